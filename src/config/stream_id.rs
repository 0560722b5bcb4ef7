//! Stream ids and SRT passphrases: the two strings an SRT caller must get
//! exactly right, so their rules are checked where they are written.

use std::fmt;

/// SRT streamid limit: the handshake's `SRT_CMD_SID` extension carries at
/// most 512 bytes (SRT RFC draft §3.2.1.3; libsrt `MAX_SID_LENGTH`).
pub const MAX_STREAM_ID_BYTES: usize = 512;

/// The prefix that switches an SRT streamid into the access-control syntax
/// (Haivision srt `docs/features/access-control.md`).
pub const ACCESS_CONTROL_PREFIX: &str = "#!::";

/// The resource name of a stream: `live/cam1`. SRT callers address it as a
/// plain streamid or as `r=` in the access-control form.
///
/// Rules: not empty, at most 512 bytes, no whitespace or control
/// characters, and not starting with `#!::`. An id containing `,` is
/// accepted but can only be addressed in the plain form, since `,`
/// separates the keys of the access-control form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

/// Why a stream id was refused; reads after "the stream id ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_STREAM_ID_BYTES} bytes (SRT streamid limit), got {0} bytes")]
    TooLong(usize),
    #[error("must not contain whitespace (found {0:?}); use `/`, `-` or `_` to separate words")]
    Whitespace(char),
    #[error("must be printable: found the control character {0:?}")]
    Control(char),
    #[error(
        "must not start with `{ACCESS_CONTROL_PREFIX}`: that prefix introduces the SRT access-control syntax; write the resource name alone (`live/cam1`)"
    )]
    AccessControlPrefix,
}

impl StreamId {
    pub fn new(id: &str) -> Result<StreamId, StreamIdError> {
        if id.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if id.len() > MAX_STREAM_ID_BYTES {
            return Err(StreamIdError::TooLong(id.len()));
        }
        if let Some(c) = id.chars().find(|c| c.is_whitespace()) {
            return Err(StreamIdError::Whitespace(c));
        }
        if let Some(c) = id.chars().find(|c| c.is_control()) {
            return Err(StreamIdError::Control(c));
        }
        if id.starts_with(ACCESS_CONTROL_PREFIX) {
            return Err(StreamIdError::AccessControlPrefix);
        }
        Ok(StreamId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SRT passphrase length rule (libsrt `SRTO_PASSPHRASE`: 10 to 79 bytes).
pub const PASSPHRASE_BYTES: std::ops::RangeInclusive<usize> = 10..=79;

/// An SRT encryption passphrase. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Passphrase(String);

/// Why a passphrase was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassphraseError {
    #[error("must be between 10 and 79 characters (SRT passphrase rule), got {0}")]
    Length(usize),
    #[error(
        "must be between 10 and 79 bytes (SRT passphrase rule; non-ASCII characters take 2 to 4 bytes in UTF-8), got {0} bytes"
    )]
    ByteLength(usize),
}

impl Passphrase {
    pub fn new(passphrase: &str) -> Result<Passphrase, PassphraseError> {
        let bytes = passphrase.len();
        if PASSPHRASE_BYTES.contains(&bytes) {
            Ok(Passphrase(passphrase.to_string()))
        } else if passphrase.is_ascii() {
            Err(PassphraseError::Length(bytes))
        } else {
            Err(PassphraseError::ByteLength(bytes))
        }
    }

    /// The secret itself, for the key derivation (PBKDF2) and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl fmt::Display for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
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
    fn stream_id_rules() {
        assert_eq!(
            StreamId::new("live/cam1").map(|s| s.to_string()),
            Ok("live/cam1".into())
        );
        assert!(StreamId::new("é/ü-1_2.3:x=y,z").is_ok());
        assert_eq!(StreamId::new(""), Err(StreamIdError::Empty));
        assert!(StreamId::new(&"a".repeat(512)).is_ok());
        assert_eq!(
            StreamId::new(&"a".repeat(513)),
            Err(StreamIdError::TooLong(513))
        );
        // 257 two-byte characters: within 512 characters, over 512 bytes.
        assert_eq!(
            StreamId::new(&"é".repeat(257)),
            Err(StreamIdError::TooLong(514))
        );
        assert_eq!(
            StreamId::new("live cam"),
            Err(StreamIdError::Whitespace(' '))
        );
        assert_eq!(
            StreamId::new("live\tcam"),
            Err(StreamIdError::Whitespace('\t'))
        );
        assert_eq!(
            StreamId::new("live\u{a0}cam"),
            Err(StreamIdError::Whitespace('\u{a0}'))
        );
        assert_eq!(
            StreamId::new("live\u{7}"),
            Err(StreamIdError::Control('\u{7}'))
        );
        assert_eq!(
            StreamId::new("#!::r=live/cam1"),
            Err(StreamIdError::AccessControlPrefix)
        );
        assert!(StreamId::new("#live").is_ok());
    }

    #[test]
    fn passphrase_rules() {
        assert!(Passphrase::new("0123456789").is_ok());
        assert!(Passphrase::new(&"x".repeat(79)).is_ok());
        assert_eq!(Passphrase::new("short"), Err(PassphraseError::Length(5)));
        assert_eq!(
            Passphrase::new(&"x".repeat(80)),
            Err(PassphraseError::Length(80))
        );
        // 40 characters, 80 bytes.
        assert_eq!(
            Passphrase::new(&"é".repeat(40)),
            Err(PassphraseError::ByteLength(80))
        );
        assert_eq!(
            PassphraseError::Length(5).to_string(),
            "must be between 10 and 79 characters (SRT passphrase rule), got 5"
        );
    }

    #[test]
    fn passphrases_never_print() {
        let p = Passphrase::new("supersecret-passphrase").expect("valid fixture");
        assert!(!format!("{p:?}").contains("supersecret"));
        assert!(!format!("{p}").contains("supersecret"));
        assert_eq!(p.expose(), "supersecret-passphrase");
    }
}
