//! RTP sequence numbers: 16 bits that wrap (RFC 3550 §5.1), and their
//! extension to 64 bits by counting wraps (RFC 3550 Appendix A.1's `cycles`).

use std::fmt;

/// A 16-bit RTP sequence number (RFC 3550 §5.1), arithmetic mod 2^16.
///
/// Sequence numbers form a circle, so there is no total order: `SeqNo`
/// deliberately implements neither `PartialOrd` nor `Ord`. Compare two of them
/// through [`SeqNo::distance`], which takes the shorter way around, or extend
/// them to 64 bits with [`SeqUnwrapper`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(u16);

impl SeqNo {
    pub const fn new(value: u16) -> SeqNo {
        SeqNo(value)
    }

    pub const fn value(self) -> u16 {
        self.0
    }

    /// The sequence number `n` packets later, wrapping at 2^16.
    #[must_use]
    pub const fn add(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }

    #[must_use]
    pub const fn next(self) -> SeqNo {
        self.add(1)
    }

    /// Signed distance `self - earlier` in packets, wrap-aware: the result
    /// lies in `[-32768, 32767]`. Two numbers exactly 32768 apart are
    /// ambiguous; that case comes out as -32768 (`self` is "earlier").
    pub const fn distance(self, earlier: SeqNo) -> i16 {
        self.0.wrapping_sub(earlier.0) as i16
    }

    /// `self` comes after `other` going the shorter way around the circle.
    pub const fn is_after(self, other: SeqNo) -> bool {
        self.distance(other) > 0
    }
}

impl fmt::Debug for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNo({})", self.0)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<u16> for SeqNo {
    fn from(value: u16) -> SeqNo {
        SeqNo(value)
    }
}

/// Extends 16-bit sequence numbers to 64 bits: `cycles * 2^16 + seq`, where
/// `cycles` counts wraps (RFC 3550 Appendix A.1).
///
/// Each number is placed at the extended value nearest to the highest one seen
/// so far, so a packet that arrives late across a wrap (65535 after 0) gets
/// the lower extended number. The first number is placed in cycle 1, not 0, so
/// that a packet a little older than the first one still has an extended
/// number (there is no negative extended number to give it otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqUnwrapper {
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// Extended number of the first sequence number seen is `FIRST_CYCLE *
    /// 2^16 + seq`.
    pub const FIRST_CYCLE: u64 = 1;

    pub const fn new() -> SeqUnwrapper {
        SeqUnwrapper { highest: None }
    }

    /// The extended number for `seq`; raises the highest number seen when
    /// `seq` is ahead of it.
    pub fn extend(&mut self, seq: SeqNo) -> u64 {
        let extended = match self.highest {
            None => (Self::FIRST_CYCLE << 16) | u64::from(seq.value()),
            Some(highest) => {
                // The low 16 bits of `highest` are its sequence number.
                let delta = seq.distance(SeqNo::new(highest as u16));
                highest.saturating_add_signed(i64::from(delta))
            }
        };
        if self.highest.is_none_or(|h| extended > h) {
            self.highest = Some(extended);
        }
        extended
    }

    /// The highest extended number seen, if any.
    pub const fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Wraps counted so far (RFC 3550 A.1 `cycles`), starting at
    /// [`Self::FIRST_CYCLE`].
    pub fn cycles(&self) -> Option<u64> {
        self.highest.map(|h| h >> 16)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn distance_across_the_wrap() {
        assert_eq!(SeqNo::new(0).distance(SeqNo::new(65535)), 1);
        assert_eq!(SeqNo::new(65535).distance(SeqNo::new(0)), -1);
        assert_eq!(SeqNo::new(5).distance(SeqNo::new(65530)), 11);
        assert_eq!(SeqNo::new(32768).distance(SeqNo::new(0)), -32768);
        assert!(SeqNo::new(2).is_after(SeqNo::new(65000)));
        assert!(!SeqNo::new(65000).is_after(SeqNo::new(2)));
        assert_eq!(SeqNo::new(65535).next(), SeqNo::new(0));
    }

    #[test]
    fn unwrapper_counts_cycles_and_places_late_packets_before_the_wrap() {
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.extend(SeqNo::new(65534)), 65536 + 65534);
        assert_eq!(u.extend(SeqNo::new(0)), 2 * 65536);
        assert_eq!(u.extend(SeqNo::new(65535)), 65536 + 65535);
        assert_eq!(u.extend(SeqNo::new(1)), 2 * 65536 + 1);
        assert_eq!(u.highest(), Some(2 * 65536 + 1));
        assert_eq!(u.cycles(), Some(2));
        // Older than the first number seen, across the wrap backwards.
        let mut u = SeqUnwrapper::new();
        assert_eq!(u.extend(SeqNo::new(2)), 65536 + 2);
        assert_eq!(u.extend(SeqNo::new(65530)), 65536 - 6);
        assert_eq!(u.highest(), Some(65536 + 2));
    }

    proptest! {
        #[test]
        fn distance_inverts_add(start: u16, n in -32767i16..=32767) {
            let a = SeqNo::new(start);
            let b = a.add(n as u16);
            prop_assert_eq!(b.distance(a), n);
            prop_assert_eq!(a.distance(b), -n);
        }

        /// A stream that advances by steps below 2^15, with each packet
        /// delivered at most a few hundred places late, unwraps to the true
        /// counter however many times it wraps.
        #[test]
        fn unwrapping_recovers_the_true_counter(
            start in 0u64..65536,
            steps in proptest::collection::vec(0u64..3000, 1..200),
            late in proptest::collection::vec(0u64..300, 1..200),
        ) {
            let mut u = SeqUnwrapper::new();
            let first = u.extend(SeqNo::new(start as u16));
            prop_assert_eq!(first, 65536 + start);
            let mut truth = first;
            for (step, back) in steps.iter().zip(late.iter().cycle()) {
                truth += step;
                prop_assert_eq!(u.extend(SeqNo::new(truth as u16)), truth);
                // A late packet from before the current highest.
                let old = truth - back;
                prop_assert_eq!(u.extend(SeqNo::new(old as u16)), old);
            }
            prop_assert_eq!(u.highest(), Some(truth));
            prop_assert_eq!(u.cycles(), Some(truth >> 16));
        }
    }
}
