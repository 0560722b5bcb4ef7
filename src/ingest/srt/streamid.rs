//! The SRT stream id a caller sends (SRT RFC draft §3.2.1.3), parsed into
//! what it asks for: [`StreamRequest`].
//!
//! Two forms are accepted:
//!
//! - plain: `live/cam1`, a publisher of that resource;
//! - access control (Haivision srt `docs/features/access-control.md`):
//!   `#!::` then comma-separated `key=value` items, e.g.
//!   `#!::r=live/cam1,m=publish,u=alice,switchyard_role=backup`.
//!
//! Keys of the access-control form: `r` resource, `m` mode (`publish` or
//! `request`; `bidirectional` is refused), `u` user, `t` type (only
//! `stream`), `s` session id and `h` host (accepted and ignored). The spec
//! reserves every single-letter key, so unknown single-letter keys are
//! tolerated (a newer caller may send one), and custom keys carry a
//! prefix: switchyard reads `switchyard_role=main|backup`. Other custom
//! keys are tolerated; an unknown `switchyard_` key is a typo and refused.
//!
//! The spec's default mode is `request`; switchyard defaults to `publish`,
//! because its callers are encoders and the plain form has no mode at all.
//!
//! ffmpeg 5.1 percent-encodes the stream id of an `srt://` URL
//! (`%23%21%3A%3Ar%3Dlive%2Fcam1`), so the id is percent-decoded first.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use crate::config::{StreamId, StreamIdError as ResourceError};

/// The prefix of the access-control form.
pub const ACCESS_CONTROL_PREFIX: &str = "#!::";

/// The `m=` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The caller sends the stream (an encoder).
    Publish,
    /// The caller pulls the stream's output (a player).
    Request,
}

/// The input slot a publisher asks for with `switchyard_role=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclaredRole {
    Main,
    Backup,
}

/// What a caller asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// `r=`, or the whole plain id.
    pub resource: StreamId,
    pub mode: Mode,
    /// `u=`.
    pub user: Option<String>,
    /// `switchyard_role=`; `None` leaves it to the stream's
    /// `second_publisher` setting.
    pub role: Option<DeclaredRole>,
}

/// Why a stream id cannot be served. All of them are the caller's mistake
/// (access-control code 400), except [`StreamIdError::UnsupportedMode`]
/// (405) and [`StreamIdError::UnsupportedType`] (406).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("bad percent-encoding at byte {at}: `%` must be followed by two hex digits of UTF-8")]
    BadPercentEncoding { at: usize },
    #[error("item {item:?} is not `key=value`")]
    NotKeyValue { item: String },
    #[error("key `{key}` appears twice")]
    DuplicateKey { key: String },
    #[error("no resource: add `r=NAME`, e.g. `#!::r=live/cam1,m=publish`")]
    MissingResource,
    #[error("resource {resource:?} {reason}")]
    BadResource {
        resource: String,
        reason: ResourceError,
    },
    #[error("mode `m={0}` is not one of publish, request")]
    UnknownMode(String),
    #[error("mode `m={0}` is not served; use publish or request")]
    UnsupportedMode(String),
    #[error("type `t={0}` is not served; only `t=stream` (live) is")]
    UnsupportedType(String),
    #[error("`switchyard_role={0}` must be main or backup")]
    BadRole(String),
    #[error("unknown switchyard key `{0}` (switchyard reads only `switchyard_role`)")]
    UnknownSwitchyardKey(String),
}

/// Decodes `%XX` escapes (RFC 3986 §2.1). The result must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, StreamIdError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'%' {
            out.push(byte);
            at += 1;
            continue;
        }
        let bad = StreamIdError::BadPercentEncoding { at };
        let digit = |offset: usize| {
            bytes
                .get(at + offset)
                .and_then(|d| char::from(*d).to_digit(16))
                .ok_or_else(|| bad.clone())
        };
        let value = digit(1)? * 16 + digit(2)?;
        out.push(value as u8);
        at += 3;
    }
    String::from_utf8(out).map_err(|e| StreamIdError::BadPercentEncoding {
        at: e.utf8_error().valid_up_to(),
    })
}

impl StreamRequest {
    /// Parses a stream id as it arrived in the handshake.
    pub fn parse(raw: &str) -> Result<StreamRequest, StreamIdError> {
        let decoded = if raw.contains('%') {
            percent_decode(raw)?
        } else {
            raw.to_string()
        };
        match decoded.strip_prefix(ACCESS_CONTROL_PREFIX) {
            Some(items) => parse_access_control(items),
            None => Ok(StreamRequest {
                resource: resource(&decoded)?,
                mode: Mode::Publish,
                user: None,
                role: None,
            }),
        }
    }
}

fn resource(text: &str) -> Result<StreamId, StreamIdError> {
    if text.is_empty() {
        return Err(StreamIdError::MissingResource);
    }
    StreamId::new(text).map_err(|reason| StreamIdError::BadResource {
        resource: text.to_string(),
        reason,
    })
}

fn parse_access_control(items: &str) -> Result<StreamRequest, StreamIdError> {
    let mut seen: Vec<&str> = Vec::new();
    let mut resource_text = None;
    let mut mode = Mode::Publish;
    let mut user = None;
    let mut role = None;
    for item in items.split(',') {
        let (key, value) = item
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| StreamIdError::NotKeyValue { item: item.into() })?;
        if seen.contains(&key) {
            return Err(StreamIdError::DuplicateKey { key: key.into() });
        }
        seen.push(key);
        match key {
            "r" => resource_text = Some(value),
            "m" => {
                mode = match value {
                    "publish" => Mode::Publish,
                    "request" => Mode::Request,
                    "bidirectional" => return Err(StreamIdError::UnsupportedMode(value.into())),
                    _ => return Err(StreamIdError::UnknownMode(value.into())),
                }
            }
            "u" => user = Some(value.to_string()),
            "t" if value == "stream" => {}
            "t" => return Err(StreamIdError::UnsupportedType(value.into())),
            "switchyard_role" => {
                role = Some(match value {
                    "main" => DeclaredRole::Main,
                    "backup" => DeclaredRole::Backup,
                    _ => return Err(StreamIdError::BadRole(value.into())),
                })
            }
            _ if key.starts_with("switchyard_") => {
                return Err(StreamIdError::UnknownSwitchyardKey(key.into()));
            }
            // `s` (session id), `h` (host), any other single-letter key the
            // spec may define later, and other systems' custom keys.
            _ => {}
        }
    }
    Ok(StreamRequest {
        resource: resource(resource_text.unwrap_or_default())?,
        mode,
        user,
        role,
    })
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<StreamRequest, StreamIdError> {
        StreamRequest::parse(raw)
    }

    fn request(
        resource: &str,
        mode: Mode,
        user: Option<&str>,
        role: Option<DeclaredRole>,
    ) -> StreamRequest {
        StreamRequest {
            resource: StreamId::new(resource).unwrap(),
            mode,
            user: user.map(String::from),
            role,
        }
    }

    #[test]
    fn plain_form_is_a_publisher() {
        assert_eq!(
            parse("live/cam1"),
            Ok(request("live/cam1", Mode::Publish, None, None))
        );
        // Characters that mean something in the access-control form are
        // plain text here.
        assert_eq!(parse("a=b,c").unwrap().resource.as_str(), "a=b,c");
    }

    #[test]
    fn access_control_form() {
        assert_eq!(
            parse("#!::r=live/cam1,m=publish,u=alice,switchyard_role=backup"),
            Ok(request(
                "live/cam1",
                Mode::Publish,
                Some("alice"),
                Some(DeclaredRole::Backup)
            ))
        );
        assert_eq!(
            parse("#!::m=request,r=live/cam1"),
            Ok(request("live/cam1", Mode::Request, None, None))
        );
        assert_eq!(
            parse("#!::r=live/cam1,switchyard_role=main").unwrap().role,
            Some(DeclaredRole::Main)
        );
        // No `m`: switchyard's callers are publishers.
        assert_eq!(parse("#!::r=x").unwrap().mode, Mode::Publish);
        assert_eq!(parse("#!::r=x,t=stream").unwrap().resource.as_str(), "x");
    }

    #[test]
    fn reserved_single_letter_keys() {
        // `s` is a session id, not a role; `h` a host name.
        let r = parse("#!::r=live/cam1,s=backup,h=example.com").unwrap();
        assert_eq!(r, request("live/cam1", Mode::Publish, None, None));
        // Letters the spec may define later, and other systems' custom keys.
        assert!(parse("#!::r=live/cam1,q=1,z=").is_ok());
        assert!(parse("#!::r=live/cam1,vendor_x=1").is_ok());
        assert_eq!(
            parse("#!::r=x,switchyard_rol=backup"),
            Err(StreamIdError::UnknownSwitchyardKey("switchyard_rol".into()))
        );
    }

    #[test]
    fn percent_encoding() {
        // What ffmpeg 5.1 sends for `streamid=#!::r=live/cam2,m=publish`.
        assert_eq!(
            parse("%23%21%3A%3Ar%3Dlive%2Fcam2%2Cm%3Dpublish"),
            Ok(request("live/cam2", Mode::Publish, None, None))
        );
        assert_eq!(
            parse("%23%21%3a%3ar%3dlive%2fcam1%2cm%3drequest")
                .unwrap()
                .mode,
            Mode::Request
        );
        assert_eq!(
            parse("live%2Fcaf%C3%A9").unwrap().resource.as_str(),
            "live/café"
        );
        assert_eq!(
            percent_decode("a%"),
            Err(StreamIdError::BadPercentEncoding { at: 1 })
        );
        assert_eq!(
            percent_decode("a%4"),
            Err(StreamIdError::BadPercentEncoding { at: 1 })
        );
        assert_eq!(
            percent_decode("%zz"),
            Err(StreamIdError::BadPercentEncoding { at: 0 })
        );
        assert_eq!(
            percent_decode("%FF"),
            Err(StreamIdError::BadPercentEncoding { at: 0 })
        );
        assert_eq!(
            percent_decode("%C3%"),
            Err(StreamIdError::BadPercentEncoding { at: 3 })
        );
    }

    /// Percent-encodes every byte that is not unreserved (RFC 3986 §2.3),
    /// as ffmpeg does for the streamid of an `srt://` URL.
    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn percent_encoded_ids_parse_the_same(
            resource in "[a-z0-9/_.é-]{1,24}",
            user in proptest::option::of("[a-z0-9]{1,8}"),
            request in proptest::bool::ANY,
            backup in proptest::bool::ANY,
        ) {
            let mut id = format!("#!::r={resource}");
            if let Some(user) = &user {
                id.push_str(&format!(",u={user}"));
            }
            if request {
                id.push_str(",m=request");
            }
            if backup {
                id.push_str(",s=abc,switchyard_role=backup");
            }
            let parsed = parse(&id).unwrap();
            proptest::prop_assert_eq!(parse(&encode(&id)).unwrap(), parsed.clone());
            proptest::prop_assert_eq!(parsed.resource.as_str(), resource.as_str());
            proptest::prop_assert_eq!(parsed.user, user);
            proptest::prop_assert_eq!(parsed.mode == Mode::Request, request);
            proptest::prop_assert_eq!(parsed.role.is_some(), backup);
        }
    }

    #[test]
    fn malformed() {
        use StreamIdError::*;
        let cases: &[(&str, StreamIdError)] = &[
            ("", MissingResource),
            (
                "#!::",
                NotKeyValue {
                    item: String::new(),
                },
            ),
            ("#!::m=publish", MissingResource),
            ("#!::r=", MissingResource),
            (
                "#!::r=a,",
                NotKeyValue {
                    item: String::new(),
                },
            ),
            ("#!::r", NotKeyValue { item: "r".into() }),
            ("#!::=x,r=a", NotKeyValue { item: "=x".into() }),
            ("#!::r=a,r=b", DuplicateKey { key: "r".into() }),
            ("#!::r=a,m=push", UnknownMode("push".into())),
            (
                "#!::r=a,m=bidirectional",
                UnsupportedMode("bidirectional".into()),
            ),
            ("#!::r=a,t=file", UnsupportedType("file".into())),
            ("#!::r=a,switchyard_role=spare", BadRole("spare".into())),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse(raw).as_ref(), Err(expected), "{raw:?}");
        }
        assert!(matches!(parse("live cam"), Err(BadResource { .. })));
        assert!(matches!(parse("#!::r=a b"), Err(BadResource { .. })));
        // A decoded prefix inside the resource is not a second form.
        assert!(matches!(parse("#!::r=#!::x"), Err(BadResource { .. })));
    }
}
