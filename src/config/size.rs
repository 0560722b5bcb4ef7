//! Byte sizes: `16777216`, `"16 MiB"`, `"16MiB"`, `"4 MB"`, `"512 KiB"`.

use std::fmt;

/// A number of bytes.
///
/// Written in a config file as an integer (bytes) or a string: an integer,
/// optional spaces, then a unit. Binary units (`KiB`, `MiB`, `GiB`, `TiB`)
/// are powers of 1024, decimal ones (`kB`/`KB`, `MB`, `GB`, `TB`) powers of
/// 1000, `B` is bytes. Units are case-sensitive on purpose: `Mb` usually
/// means megabits, and a buffer size off by a factor of 8 is a silent bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(u64);

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Why a size string was refused; displayed after "must be a size: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("expected a whole number of bytes or a number with a unit (\"512 KiB\", \"16 MiB\")")]
    NoNumber,
    #[error(
        "`{0}` is not a unit; use B, KiB, MiB, GiB, TiB (powers of 1024) or kB, MB, GB, TB (powers of 1000)"
    )]
    UnknownUnit(String),
    #[error("fractions are not accepted; write \"1536 KiB\" rather than \"1.5 MiB\"")]
    Fraction,
    #[error("the size does not fit in 64 bits")]
    Overflow,
}

impl ByteSize {
    pub const KIB: ByteSize = ByteSize(1 << 10);
    pub const MIB: ByteSize = ByteSize(1 << 20);
    pub const GIB: ByteSize = ByteSize(1 << 30);

    pub const fn bytes(n: u64) -> ByteSize {
        ByteSize(n)
    }

    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n << 10)
    }

    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The size as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }

    /// Parses the string form (see the type docs).
    pub fn parse(text: &str) -> Result<ByteSize, SizeError> {
        let text = text.trim();
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit() && c != '_')
            .unwrap_or(text.len());
        let (number, rest) = text.split_at_checked(digits_end).unwrap_or((text, ""));
        let number: String = number.chars().filter(|&c| c != '_').collect();
        if number.is_empty() {
            return Err(SizeError::NoNumber);
        }
        if rest.starts_with(['.', ',']) {
            return Err(SizeError::Fraction);
        }
        let unit = rest.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|&(_, m)| m)
                .ok_or_else(|| SizeError::UnknownUnit(unit.to_string()))?
        };
        let n: u64 = number.parse().map_err(|_| SizeError::Overflow)?;
        n.checked_mul(multiplier)
            .map(ByteSize)
            .ok_or(SizeError::Overflow)
    }
}

/// The largest binary unit that divides the size exactly: `16 MiB`,
/// `1536 KiB`, `1000 bytes`.
impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
            if n != 0 && n.trailing_zeros() >= shift {
                return write!(f, "{} {unit}", n >> shift);
            }
        }
        match n {
            1 => write!(f, "1 byte"),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_forms() {
        for (text, bytes) in [
            ("512 KiB", 512 << 10),
            ("16MiB", 16 << 20),
            ("16 MiB", 16 << 20),
            ("4 MB", 4_000_000),
            ("1GiB", 1 << 30),
            ("2 TiB", 2 << 40),
            ("3 kB", 3_000),
            ("3 KB", 3_000),
            ("5 GB", 5_000_000_000),
            ("1 TB", 1_000_000_000_000),
            ("1316", 1316),
            ("1316 B", 1316),
            (" 8 MiB ", 8 << 20),
            ("1_048_576", 1 << 20),
            ("0", 0),
        ] {
            assert_eq!(ByteSize::parse(text), Ok(ByteSize(bytes)), "{text:?}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        assert_eq!(ByteSize::parse(""), Err(SizeError::NoNumber));
        assert_eq!(ByteSize::parse("MiB"), Err(SizeError::NoNumber));
        assert_eq!(ByteSize::parse("-4 MiB"), Err(SizeError::NoNumber));
        assert_eq!(ByteSize::parse("1.5 MiB"), Err(SizeError::Fraction));
        assert_eq!(
            ByteSize::parse("16 Mb"),
            Err(SizeError::UnknownUnit("Mb".into()))
        );
        assert_eq!(
            ByteSize::parse("16 mib"),
            Err(SizeError::UnknownUnit("mib".into()))
        );
        assert_eq!(
            ByteSize::parse("16 MiB extra"),
            Err(SizeError::UnknownUnit("MiB extra".into()))
        );
        assert_eq!(
            ByteSize::parse("17 TiB0"),
            Err(SizeError::UnknownUnit("TiB0".into()))
        );
        assert_eq!(
            ByteSize::parse("99999999999999999999"),
            Err(SizeError::Overflow)
        );
        assert_eq!(ByteSize::parse("16777216 TiB"), Err(SizeError::Overflow));
        assert!(
            SizeError::UnknownUnit("Mb".into())
                .to_string()
                .contains("MiB")
        );
    }

    #[test]
    fn display_uses_the_largest_exact_binary_unit() {
        assert_eq!(ByteSize::mib(16).to_string(), "16 MiB");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536 KiB");
        assert_eq!(ByteSize::bytes(4_000_000).to_string(), "4000000 bytes");
        assert_eq!(ByteSize::bytes(1).to_string(), "1 byte");
        assert_eq!(ByteSize::bytes(0).to_string(), "0 bytes");
        assert_eq!(ByteSize::GIB.to_string(), "1 GiB");
    }

    proptest! {
        #[test]
        fn display_round_trips(n in any::<u64>()) {
            let shown = ByteSize(n).to_string();
            let text = shown.trim_end_matches("bytes").trim_end_matches("byte");
            prop_assert_eq!(ByteSize::parse(text), Ok(ByteSize(n)));
        }

        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = ByteSize::parse(&text);
        }
    }
}
