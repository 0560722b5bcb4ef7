//! `srt://host:port?streamid=…&passphrase=…&pbkeylen=16&latency=120`: the
//! destination of an SRT output (switchyard pushes as caller).
//!
//! The query keys are libsrt's URI keys (`srt-live-transmit`), the subset an
//! output caller uses. `latency` is in milliseconds as in libsrt URIs (ffmpeg's
//! own `latency` option is in microseconds; this is not ffmpeg's option).
//! Values are percent-decoded: ffmpeg and many web forms percent-encode the
//! streamid (`out%2Fcam1`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::stream_id::{MAX_STREAM_ID_BYTES, Passphrase};

/// AES key length (SRT `pbkeylen`, in bytes: 16, 24 or 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeyLength {
    Aes128,
    Aes192,
    Aes256,
}

impl AesKeyLength {
    /// The `pbkeylen` value: key length in bytes.
    pub fn bytes(self) -> u8 {
        match self {
            AesKeyLength::Aes128 => 16,
            AesKeyLength::Aes192 => 24,
            AesKeyLength::Aes256 => 32,
        }
    }
}

/// A checked SRT caller URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtUrl {
    /// A host name or an IP address (brackets removed from IPv6).
    pub host: String,
    pub port: u16,
    /// Percent-decoded; at most 512 bytes.
    pub stream_id: Option<String>,
    pub passphrase: Option<Passphrase>,
    /// `None` when `pbkeylen` is absent or 0: the SRT default (AES-128) or,
    /// on a listener, whatever the peer chose.
    pub key_length: Option<AesKeyLength>,
    /// SRT TSBPD latency the caller asks for; `None` = the SRT default.
    pub latency: Option<Duration>,
}

/// A refused URL: `offset` is the byte offset in the URL text of the part
/// that is wrong, so the error can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SrtUrlError {
    pub offset: usize,
    pub message: String,
}

/// Query keys an SRT output understands.
pub const QUERY_KEYS: &[&str] = &["streamid", "passphrase", "pbkeylen", "latency", "mode"];

fn fail<T>(offset: usize, message: impl Into<String>) -> Result<T, SrtUrlError> {
    Err(SrtUrlError {
        offset,
        message: message.into(),
    })
}

impl SrtUrl {
    pub fn parse(url: &str) -> Result<SrtUrl, SrtUrlError> {
        const SCHEME: &str = "srt://";
        let Some(rest) = url.strip_prefix(SCHEME) else {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            let got = if scheme.is_empty() {
                "no scheme".to_string()
            } else {
                format!("scheme `{scheme}`")
            };
            return fail(
                0,
                format!("must be an SRT URL `srt://HOST:PORT?streamid=…`, got {got}"),
            );
        };
        let authority_end = rest.find(['?', '/', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at_checked(authority_end).unwrap_or((rest, ""));
        let (host, port) = split_host_port(authority, SCHEME.len())?;
        let query_offset = SCHEME.len() + authority.len();
        let query = match tail.strip_prefix('/') {
            Some(after) if after.is_empty() || after.starts_with('?') => {
                after.strip_prefix('?').unwrap_or(after)
            }
            Some(_) => {
                return fail(
                    query_offset,
                    "must not have a path: an SRT stream is named with `?streamid=`, not a path",
                );
            }
            None if tail.starts_with('#') => {
                return fail(query_offset, "must not have a `#fragment`");
            }
            None => tail.strip_prefix('?').unwrap_or(tail),
        };
        let query_start = url.len() - query.len();
        let mut parsed = SrtUrl {
            host,
            port,
            stream_id: None,
            passphrase: None,
            key_length: None,
            latency: None,
        };
        let mut pbkeylen_offset = None;
        let mut seen: Vec<&str> = Vec::new();
        let mut offset = query_start;
        for pair in query.split('&') {
            let pair_offset = offset;
            offset += pair.len() + 1;
            if pair.is_empty() {
                continue;
            }
            let (key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let value_offset = pair_offset + key.len() + 1;
            if seen.contains(&key) {
                return fail(pair_offset, format!("has `{key}` twice"));
            }
            seen.push(key);
            let value = percent_decode(raw_value).map_err(|at| SrtUrlError {
                offset: value_offset + at,
                message: format!(
                    "has a bad percent escape in `{key}`: `%` must be followed by two hex digits"
                ),
            })?;
            match key {
                "streamid" => {
                    if value.is_empty() {
                        return fail(value_offset, "has an empty `streamid`");
                    }
                    if value.len() > MAX_STREAM_ID_BYTES {
                        return fail(
                            value_offset,
                            format!(
                                "has a `streamid` of {} bytes; the SRT limit is {MAX_STREAM_ID_BYTES}",
                                value.len()
                            ),
                        );
                    }
                    parsed.stream_id = Some(value);
                }
                "passphrase" => match Passphrase::new(&value) {
                    Ok(p) => parsed.passphrase = Some(p),
                    Err(e) => return fail(value_offset, format!("has a `passphrase` that {e}")),
                },
                "pbkeylen" => {
                    pbkeylen_offset = Some(pair_offset);
                    parsed.key_length = match value.as_str() {
                        "0" => None,
                        "16" => Some(AesKeyLength::Aes128),
                        "24" => Some(AesKeyLength::Aes192),
                        "32" => Some(AesKeyLength::Aes256),
                        _ => {
                            return fail(
                                value_offset,
                                format!(
                                    "has `pbkeylen={value}`; accepted: 16, 24 or 32 (AES key bytes), or 0 for the default"
                                ),
                            );
                        }
                    };
                }
                "latency" => match value.parse::<u16>() {
                    Ok(ms) => parsed.latency = Some(Duration::from_millis(ms.into())),
                    Err(_) => {
                        return fail(
                            value_offset,
                            format!(
                                "has `latency={value}`; it must be a whole number of milliseconds from 0 to 65535 (SRT TSBPD delay is a 16-bit field)"
                            ),
                        );
                    }
                },
                "mode" => {
                    if value != "caller" {
                        return fail(
                            value_offset,
                            format!(
                                "has `mode={value}`; outputs connect as `caller` (players pull from switchyard's own listener with `m=request`)"
                            ),
                        );
                    }
                }
                _ => {
                    let hint = super::suggest::closest(key, QUERY_KEYS.iter().copied())
                        .map(|k| format!("did you mean `{k}`? "))
                        .unwrap_or_default();
                    return fail(
                        pair_offset,
                        format!(
                            "has the unknown query key `{key}`; {hint}accepted: {}",
                            QUERY_KEYS.join(", ")
                        ),
                    );
                }
            }
        }
        if let (Some(at), Some(_), None) = (pbkeylen_offset, parsed.key_length, &parsed.passphrase)
        {
            return fail(
                at,
                "has `pbkeylen` without `passphrase`: a key length needs a passphrase",
            );
        }
        Ok(parsed)
    }

    /// The remote address when the host is an IP literal (no DNS needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// `srt://host:port?streamid=…&passphrase=<redacted>&…` — safe to log.
impl fmt::Display for SrtUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "srt://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "srt://{}:{}", self.host, self.port)?;
        }
        let mut sep = '?';
        let mut param = |f: &mut fmt::Formatter<'_>, key: &str, value: &dyn fmt::Display| {
            let r = write!(f, "{sep}{key}={value}");
            sep = '&';
            r
        };
        if let Some(id) = &self.stream_id {
            param(f, "streamid", &percent_encode(id))?;
        }
        if let Some(p) = &self.passphrase {
            param(f, "passphrase", p)?;
        }
        if let Some(k) = self.key_length {
            param(f, "pbkeylen", &k.bytes())?;
        }
        if let Some(l) = self.latency {
            param(f, "latency", &l.as_millis())?;
        }
        Ok(())
    }
}

fn split_host_port(authority: &str, offset: usize) -> Result<(String, u16), SrtUrlError> {
    if authority.contains('@') {
        return fail(
            offset,
            "must not carry `user@`: SRT users go in the streamid (`#!::u=…`)",
        );
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((ip, after)) = v6.split_once(']') else {
            return fail(offset, "has an IPv6 address without its closing `]`");
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return fail(
                offset + 1,
                format!("has `{ip}` in brackets, which is not an IPv6 address"),
            );
        }
        let Some(port) = after.strip_prefix(':') else {
            return fail(
                offset + authority.len(),
                "must give a port: `srt://[HOST]:PORT`",
            );
        };
        (ip, port)
    } else {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return fail(
                offset + authority.len(),
                "must give a port: `srt://HOST:PORT`",
            );
        };
        if host.contains(':') {
            return fail(
                offset,
                "has an IPv6 address without brackets: write `srt://[::1]:9000`",
            );
        }
        if host.is_empty() {
            return fail(offset, "must give a host: `srt://HOST:PORT`");
        }
        if !host.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }) || host.len() > 253
        {
            return fail(
                offset,
                format!("has `{host}`, which is not a host name or IP address"),
            );
        }
        (host, port)
    };
    let port_offset = offset + authority.len() - port.len();
    let port = match port.parse::<u16>() {
        Ok(0) => {
            return fail(
                port_offset,
                "has port 0; give the port the receiver listens on (1 to 65535)",
            );
        }
        Ok(p) => p,
        Err(_) => {
            return fail(
                port_offset,
                format!("has `{port}` as its port; a port is a number from 1 to 65535"),
            );
        }
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return fail(
                offset,
                format!("has `{host}` as its host; an output needs the receiver's address"),
            );
        }
        if ip.is_multicast() {
            return fail(
                offset,
                format!(
                    "has the multicast address `{host}`; SRT is unicast (use a `udp` output for multicast)"
                ),
            );
        }
    }
    Ok((host.to_string(), port))
}

/// Decodes `%XX` escapes. On a bad escape, the byte offset of its `%`. A
/// decoded byte sequence that is not UTF-8 is kept lossily: the streamid is
/// compared byte-for-byte by the peer, so the caller must send UTF-8 anyway.
fn percent_decode(text: &str) -> Result<String, usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(decoded) => out.push(decoded),
                None => return Err(i),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Escapes what would break a query value (`&`, `%`, `#`, `=`, space, controls).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '&' | '%' | '#' | '=' | '?') || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn err(url: &str) -> SrtUrlError {
        match SrtUrl::parse(url) {
            Ok(u) => panic!("{url} should be refused, parsed as {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn full_url() {
        let u = SrtUrl::parse(
            "srt://host.example:9001?streamid=out%2Fcam1&passphrase=0123456789ab&pbkeylen=32&latency=200&mode=caller",
        )
        .expect("valid");
        assert_eq!(u.host, "host.example");
        assert_eq!(u.port, 9001);
        assert_eq!(u.stream_id.as_deref(), Some("out/cam1"));
        assert_eq!(
            u.passphrase.as_ref().map(Passphrase::expose),
            Some("0123456789ab")
        );
        assert_eq!(u.key_length, Some(AesKeyLength::Aes256));
        assert_eq!(u.latency, Some(Duration::from_millis(200)));
        assert_eq!(u.ip(), None);
        assert_eq!(
            u.to_string(),
            "srt://host.example:9001?streamid=out/cam1&passphrase=<redacted>&pbkeylen=32&latency=200"
        );
    }

    #[test]
    fn minimal_and_ip_forms() {
        let u = SrtUrl::parse("srt://10.0.0.1:9000").expect("valid");
        assert_eq!(u.ip(), Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(u.stream_id, None);
        let u = SrtUrl::parse("srt://[::1]:9000/?streamid=a").expect("valid");
        assert_eq!(u.host, "::1");
        assert_eq!(u.to_string(), "srt://[::1]:9000?streamid=a");
        let u = SrtUrl::parse("srt://h:1?pbkeylen=0&passphrase=0123456789").expect("valid");
        assert_eq!(u.key_length, None);
        // An access-control streamid survives encoding and decoding.
        let u = SrtUrl::parse("srt://h:1?streamid=%23!::r=a,m=publish").expect("valid");
        assert_eq!(u.stream_id.as_deref(), Some("#!::r=a,m=publish"));
        assert_eq!(u.to_string(), "srt://h:1?streamid=%23!::r%3Da,m%3Dpublish");
    }

    #[test]
    fn refusals_point_at_the_bad_part() {
        let cases: &[(&str, usize, &str)] = &[
            ("udp://h:1", 0, "scheme `udp`"),
            ("h:1", 0, "no scheme"),
            ("srt://h", 7, "must give a port"),
            ("srt://:9000", 6, "must give a host"),
            ("srt://h:0", 8, "port 0"),
            ("srt://h:99999", 8, "from 1 to 65535"),
            ("srt://h:x", 8, "`x` as its port"),
            ("srt://::1:9000", 6, "without brackets"),
            ("srt://[::1:9000", 6, "closing `]`"),
            ("srt://[1.2.3.4]:9000", 7, "not an IPv6"),
            ("srt://[::1]", 11, "must give a port"),
            ("srt://bad_host:1", 6, "not a host name"),
            ("srt://a..b:1", 6, "not a host name"),
            ("srt://u@h:1", 6, "user@"),
            ("srt://0.0.0.0:1", 6, "receiver's address"),
            ("srt://239.1.1.1:1", 6, "multicast"),
            ("srt://h:1/live", 9, "path"),
            ("srt://h:1#x", 9, "fragment"),
            ("srt://h:1?streamid=", 19, "empty `streamid`"),
            ("srt://h:1?streamid=a%2", 20, "percent escape"),
            ("srt://h:1?streamid=a%zz", 20, "percent escape"),
            ("srt://h:1?streamid=a%+1", 20, "percent escape"),
            (
                "srt://h:1?passphrase=short",
                21,
                "between 10 and 79 characters",
            ),
            (
                "srt://h:1?passphrase=0123456789&pbkeylen=20",
                41,
                "accepted: 16, 24 or 32",
            ),
            ("srt://h:1?pbkeylen=16", 10, "without `passphrase`"),
            ("srt://h:1?latency=70000", 18, "16-bit"),
            ("srt://h:1?latency=-1", 18, "milliseconds"),
            ("srt://h:1?mode=listener", 15, "caller"),
            ("srt://h:1?streamid=a&streamid=b", 21, "twice"),
            ("srt://h:1?streamd=a", 10, "did you mean `streamid`?"),
            ("srt://h:1?foo=a", 10, "accepted: streamid"),
        ];
        for &(url, offset, words) in cases {
            let e = err(url);
            assert!(e.message.contains(words), "{url}: {e}");
            assert_eq!(e.offset, offset, "{url}: {e}");
        }
        let long = format!("srt://h:1?streamid={}", "a".repeat(513));
        assert!(err(&long).message.contains("513 bytes"));
    }

    proptest! {
        #[test]
        fn never_panics_and_offsets_stay_inside(url in "(srt://)?[a-z0-9:\\[\\]%?&=/#@.]{0,40}") {
            if let Err(e) = SrtUrl::parse(&url) {
                prop_assert!(e.offset <= url.len());
            }
        }

        #[test]
        fn stream_ids_round_trip_through_display(id in "[^\u{0}]{1,30}") {
            let url = SrtUrl { host: "h".into(), port: 1, stream_id: Some(id.clone()), passphrase: None, key_length: None, latency: None };
            let back = SrtUrl::parse(&url.to_string());
            prop_assert_eq!(back.map(|u| u.stream_id), Ok(Some(id)));
        }
    }
}
