//! Newtypes for transport stream protocol numbers.

use std::fmt;

/// A 13-bit packet identifier (ISO/IEC 13818-1 §2.4.3.3, Table 2-3).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pid(u16);

impl Pid {
    /// Program Association Table.
    pub const PAT: Pid = Pid(0x0000);
    /// Null packets (stuffing for constant bitrate).
    pub const NULL: Pid = Pid(0x1FFF);
    /// Number of distinct PIDs, for lookup tables indexed by PID.
    pub const COUNT: usize = 0x2000;

    /// Builds a PID from the low 13 bits of `value`; higher bits are dropped.
    pub const fn new(value: u16) -> Pid {
        Pid(value & 0x1FFF)
    }

    pub const fn value(self) -> u16 {
        self.0
    }

    /// The PID as an index into a table of [`Pid::COUNT`] entries.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({:#06x})", self.0)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

/// A 4-bit continuity counter (ISO/IEC 13818-1 §2.4.3.3), arithmetic mod 16.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Cc(u8);

impl Cc {
    pub const fn new(value: u8) -> Cc {
        Cc(value & 0x0F)
    }

    pub const fn value(self) -> u8 {
        self.0
    }

    #[must_use]
    pub const fn next(self) -> Cc {
        Cc((self.0 + 1) & 0x0F)
    }
}

/// A 33-bit, 90 kHz presentation or decoding timestamp (ISO/IEC 13818-1 §2.4.3.7).
///
/// Timestamps wrap every 2^33 ticks (~26.5 hours); comparisons between two
/// timestamps go through [`Timestamp::delta`], which takes the shorter way
/// around the circle.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const MODULUS: u64 = 1 << 33;
    pub const HZ: u64 = 90_000;

    pub const fn new(ticks: u64) -> Timestamp {
        Timestamp(ticks & (Self::MODULUS - 1))
    }

    pub const fn ticks(self) -> u64 {
        self.0
    }

    /// Signed distance `self - earlier` in ticks, wrap-aware: the result lies
    /// in `[-2^32, 2^32)`.
    pub const fn delta(self, earlier: Timestamp) -> i64 {
        let diff = self.0.wrapping_sub(earlier.0) & (Self::MODULUS - 1);
        if diff >= Self::MODULUS / 2 {
            diff as i64 - Self::MODULUS as i64
        } else {
            diff as i64
        }
    }

    /// `self + ticks`, wrapping at 2^33.
    #[must_use]
    pub const fn add_ticks(self, ticks: i64) -> Timestamp {
        Timestamp::new(self.0.wrapping_add(ticks as u64))
    }

    /// Milliseconds as a float, for reports.
    pub fn ticks_to_ms(ticks: i64) -> f64 {
        ticks as f64 / 90.0
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

/// A program clock reference: 33-bit base at 90 kHz plus 9-bit extension
/// (0..300) at 27 MHz (ISO/IEC 13818-1 §2.4.3.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Pcr {
    base: u64,
    extension: u16,
}

impl Pcr {
    pub const HZ: u64 = 27_000_000;
    /// The 27 MHz value wraps at `2^33 * 300`.
    pub const MODULUS: u64 = Timestamp::MODULUS * 300;

    /// Builds a PCR from its fields; bits beyond 33 (base) and 9 (extension)
    /// are dropped.
    pub const fn new(base: u64, extension: u16) -> Pcr {
        Pcr {
            base: base & (Timestamp::MODULUS - 1),
            extension: extension & 0x1FF,
        }
    }

    /// Builds a PCR from a 27 MHz tick count (modulo the PCR range).
    pub const fn from_27mhz(ticks: u64) -> Pcr {
        let ticks = ticks % Self::MODULUS;
        Pcr::new(ticks / 300, (ticks % 300) as u16)
    }

    pub const fn base(self) -> u64 {
        self.base
    }

    pub const fn extension(self) -> u16 {
        self.extension
    }

    /// The clock in 27 MHz ticks. An out-of-range extension (≥ 300, which a
    /// broken muxer may send) is taken at face value rather than rejected.
    pub const fn ticks_27mhz(self) -> u64 {
        self.base * 300 + self.extension as u64
    }

    /// Signed distance `self - earlier` in 27 MHz ticks, wrap-aware.
    pub const fn delta(self, earlier: Pcr) -> i64 {
        let m = Self::MODULUS as i128;
        let mut diff = (self.ticks_27mhz() as i128 - earlier.ticks_27mhz() as i128) % m;
        if diff < 0 {
            diff += m;
        }
        if diff >= m / 2 {
            (diff - m) as i64
        } else {
            diff as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cc_wraps_mod_16() {
        assert_eq!(Cc::new(15).next(), Cc::new(0));
        assert_eq!(Cc::new(0x1F).value(), 0x0F);
    }

    #[test]
    fn timestamp_delta_across_wrap() {
        let before = Timestamp::new(Timestamp::MODULUS - 10);
        let after = Timestamp::new(5);
        assert_eq!(after.delta(before), 15);
        assert_eq!(before.delta(after), -15);
    }

    #[test]
    fn pcr_delta_across_wrap() {
        let before = Pcr::from_27mhz(Pcr::MODULUS - 100);
        let after = Pcr::from_27mhz(200);
        assert_eq!(after.delta(before), 300);
        assert_eq!(before.delta(after), -300);
    }

    proptest! {
        #[test]
        fn timestamp_add_then_delta_round_trips(start in 0u64..Timestamp::MODULUS, step in -(1i64 << 31)..(1i64 << 31)) {
            let a = Timestamp::new(start);
            prop_assert_eq!(a.add_ticks(step).delta(a), step);
        }

        #[test]
        fn pcr_27mhz_round_trips(ticks in 0u64..Pcr::MODULUS) {
            prop_assert_eq!(Pcr::from_27mhz(ticks).ticks_27mhz(), ticks);
        }
    }
}
