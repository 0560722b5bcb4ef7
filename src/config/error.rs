//! Configuration errors: every one names the key, the place and the rule.

use std::fmt;
use std::sync::Arc;

/// A position in the configuration text, 1-based, as editors count it:
/// `column` counts characters (Unicode scalar values), not bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`. An offset past the end, or
    /// inside a multi-byte character, is clamped to the character before it.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = text.get(..end).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of rule an error broke, for callers that react to errors
/// (tests, a future reload endpoint) rather than print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not TOML (or not UTF-8). Only the first such error is
    /// reported: the parser cannot continue past it.
    Syntax,
    /// A key the schema does not have.
    UnknownKey,
    /// A required key is absent.
    Missing,
    /// A value of the wrong TOML type (a string where an integer belongs).
    WrongType,
    /// A value of the right type that breaks a rule: out of range, not an
    /// address, not one of the accepted words.
    Invalid,
    /// A key that exists but does not apply here (`payload_type` on a UDP
    /// input, `multicast_interface` without `multicast_group`).
    NotApplicable,
    /// Two parts of the file contradict each other: duplicate stream ids,
    /// two sockets on one port, `buffer` above `buffer_hard_cap`.
    Conflict,
}

/// One thing wrong with a configuration file.
///
/// Displays as `FILE:LINE:COL: key.path: message`, the form editors and
/// `grep` understand. Syntax errors have an empty `path` and display as
/// `FILE:LINE:COL: invalid TOML: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The name given to [`super::parse`], usually the file path.
    pub source_name: Arc<str>,
    pub location: Location,
    /// The key path, e.g. `stream[2].output[0].url`.
    pub path: String,
    pub kind: ErrorKind,
    /// A sentence saying what is wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            source_name,
            location,
            path,
            message,
            ..
        } = self;
        if path.is_empty() {
            write!(f, "{source_name}:{location}: invalid TOML: {message}")
        } else {
            write!(f, "{source_name}:{location}: {path}: {message}")
        }
    }
}

/// Every error found in a configuration file, in file order. Never empty
/// when returned by [`super::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Sorts `errors` into file order (stable, so errors at one place keep
    /// the order they were found in).
    pub(super) fn new(mut errors: Vec<ConfigError>) -> ConfigErrors {
        errors.sort_by_key(|e| e.location);
        ConfigErrors { errors }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// One error per line, then the count.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.errors {
            writeln!(f, "{error}")?;
        }
        match self.errors.len() {
            1 => write!(f, "1 error"),
            n => write!(f, "{n} errors"),
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

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 4),
            Location { line: 1, column: 5 }
        );
        // `=` on line 2 is after `bé ` (3 characters, 4 bytes).
        let eq = text.find("= \"").expect("fixture has `= \"`");
        assert_eq!(
            Location::of_offset(text, eq),
            Location { line: 2, column: 4 }
        );
    }

    #[test]
    fn offsets_out_of_range_or_mid_character_are_clamped() {
        let text = "é\nx";
        // Byte 1 is inside `é`.
        assert_eq!(
            Location::of_offset(text, 1),
            Location { line: 1, column: 1 }
        );
        assert_eq!(
            Location::of_offset(text, 99),
            Location { line: 2, column: 2 }
        );
        assert_eq!(Location::of_offset("", 5), Location { line: 1, column: 1 });
    }

    #[test]
    fn display_forms() {
        let e = ConfigError {
            source_name: "f.toml".into(),
            location: Location { line: 3, column: 7 },
            path: "srt.latency_ms".into(),
            kind: ErrorKind::Invalid,
            message: "must be between 0 and 65535".into(),
        };
        assert_eq!(
            e.to_string(),
            "f.toml:3:7: srt.latency_ms: must be between 0 and 65535"
        );
        let syntax = ConfigError {
            path: String::new(),
            kind: ErrorKind::Syntax,
            message: "unclosed array".into(),
            ..e.clone()
        };
        assert_eq!(
            syntax.to_string(),
            "f.toml:3:7: invalid TOML: unclosed array"
        );
        let all = ConfigErrors::new(vec![e.clone(), syntax]);
        assert_eq!(all.to_string().lines().count(), 3);
        assert!(all.to_string().ends_with("\n2 errors"));
        assert!(
            ConfigErrors::new(vec![e])
                .to_string()
                .ends_with("\n1 error")
        );
    }
}
