//! A view of the parsed TOML document that keeps spans and collects errors.
//!
//! Readers never stop at an error: a bad value is reported and the caller
//! carries on with the default, so one run of `check-config` lists every
//! problem in the file.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::sync::Arc;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::error::{ConfigError, ErrorKind, Location};
use super::size::ByteSize;

/// Collects errors, each with its location in the text.
#[derive(Debug)]
pub(super) struct Report<'t> {
    text: &'t str,
    source_name: Arc<str>,
    errors: Vec<ConfigError>,
}

impl<'t> Report<'t> {
    pub(super) fn new(text: &'t str, source_name: &str) -> Report<'t> {
        Report {
            text,
            source_name: source_name.into(),
            errors: Vec::new(),
        }
    }

    pub(super) fn push(
        &mut self,
        path: &str,
        span: Option<&Range<usize>>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) {
        let offset = span.map_or(0, |s| s.start);
        self.errors.push(ConfigError {
            source_name: Arc::clone(&self.source_name),
            location: Location::of_offset(self.text, offset),
            path: path.to_string(),
            kind,
            message: message.into(),
        });
    }

    /// `line N` of a span, for messages that point at a second place.
    pub(super) fn line_of(&self, span: Option<&Range<usize>>) -> usize {
        Location::of_offset(self.text, span.map_or(0, |s| s.start)).line
    }

    /// The span of byte `offset` of a string value's contents, when the
    /// source spells the string literally (no escapes), so an error inside a
    /// URL can point at the bad part; otherwise the span of the whole value.
    pub(super) fn inside_string(&self, field: &Field<'_>, offset: usize) -> Option<Range<usize>> {
        let span = field.span.clone()?;
        let value = field.item.as_str()?;
        let raw = self.text.get(span.clone())?;
        let quote_len = ["'''", "\"\"\"", "'", "\""]
            .into_iter()
            .find(|q| raw.starts_with(q) && raw.ends_with(q))?
            .len();
        let inner = raw.get(quote_len..raw.len().saturating_sub(quote_len))?;
        if inner == value {
            let start = span.start + quote_len + offset;
            Some(start..start)
        } else {
            Some(span)
        }
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// The source text of a span, shortened to fit in a message.
    fn snippet(&self, span: Option<&Range<usize>>) -> Option<String> {
        let raw = self.text.get(span?.clone())?;
        let first_line = raw.lines().next().unwrap_or_default();
        let mut short: String = first_line.chars().take(40).collect();
        if short.len() < raw.len() {
            short.push('…');
        }
        Some(short)
    }
}

/// One table of the document: a `[table]`, an inline `{ table }` or one
/// element of an array of tables.
#[derive(Clone)]
pub(super) struct Section<'a> {
    table: &'a dyn TableLike,
    /// Key path: empty for the root, `srt`, `stream[2]`, `stream[2].input[0]`.
    pub(super) path: String,
    /// How the section is written, for messages: `[srt]`, `[[stream]]`.
    pub(super) label: &'static str,
    /// Where the section starts (its header), for errors about the whole
    /// section such as a missing key.
    pub(super) span: Option<Range<usize>>,
}

impl std::fmt::Debug for Section<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("path", &self.path)
            .field("label", &self.label)
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

/// A value found under a key.
#[derive(Debug, Clone)]
pub(super) struct Field<'a> {
    pub(super) item: &'a Item,
    pub(super) path: String,
    pub(super) key_span: Option<Range<usize>>,
    /// The value's span, or the key's when the value has none.
    pub(super) span: Option<Range<usize>>,
}

impl<'a> Section<'a> {
    pub(super) fn root(table: &'a dyn TableLike) -> Section<'a> {
        Section {
            table,
            path: String::new(),
            label: "the top level",
            span: Some(0..0),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<Field<'a>> {
        let (k, item) = self.table.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let key_span = k.span();
        Some(Field {
            item,
            path: self.child_path(key),
            span: item.span().or_else(|| key_span.clone()),
            key_span,
        })
    }

    /// Like [`Section::get`], reporting the key as missing when absent;
    /// `what` says what the key is for.
    pub(super) fn require(
        &self,
        key: &str,
        what: &str,
        report: &mut Report<'_>,
    ) -> Option<Field<'a>> {
        let field = self.get(key);
        if field.is_none() {
            report.push(
                &self.child_path(key),
                self.span.as_ref(),
                ErrorKind::Missing,
                format!("{} needs `{key}`: {what}", self.label),
            );
        }
        field
    }

    /// Reports every key not in `known`, suggesting the closest known key,
    /// or the section the key belongs to.
    pub(super) fn check_keys(&self, known: &[&str], report: &mut Report<'_>) {
        for (key, _) in self.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = self.table.key(key).and_then(|k| k.span());
            let advice = if let Some(close) = super::suggest::closest(key, known.iter().copied()) {
                format!("did you mean `{close}`?")
            } else {
                let homes = super::sections_with_key(key);
                if homes.is_empty() {
                    format!("accepted keys: {}", known.join(", "))
                } else {
                    format!("it belongs in {}", homes.join(" or "))
                }
            };
            report.push(
                &self.child_path(key),
                span.as_ref(),
                ErrorKind::UnknownKey,
                format!("unknown key `{key}` in {}; {advice}", self.label),
            );
        }
    }

    /// The table under `key` (written `[key]` or `key = { … }`).
    pub(super) fn table(
        &self,
        key: &str,
        label: &'static str,
        report: &mut Report<'_>,
    ) -> Option<Section<'a>> {
        let field = self.get(key)?;
        match field.item.as_table_like() {
            Some(table) => Some(Section {
                table,
                path: field.path,
                label,
                span: field.span,
            }),
            None => {
                field.wrong_type(&format!("a table (`{label}`)"), report);
                None
            }
        }
    }

    /// The tables under `key` (written `[[key]]` or `key = [{ … }, …]`).
    pub(super) fn tables(
        &self,
        key: &str,
        label: &'static str,
        report: &mut Report<'_>,
    ) -> Vec<Section<'a>> {
        let Some(field) = self.get(key) else {
            return Vec::new();
        };
        let element = |i: usize, table: &'a dyn TableLike, span: Option<Range<usize>>| Section {
            table,
            path: format!("{}[{i}]", field.path),
            label,
            span: span.or_else(|| field.span.clone()),
        };
        match field.item {
            Item::ArrayOfTables(array) => array
                .iter()
                .enumerate()
                .map(|(i, t)| element(i, t, t.span()))
                .collect(),
            Item::Value(Value::Array(array)) => {
                let mut sections = Vec::new();
                for (i, value) in array.iter().enumerate() {
                    match value.as_inline_table() {
                        Some(t) => sections.push(element(i, t, value.span())),
                        None => Field {
                            item: field.item,
                            path: format!("{}[{i}]", field.path),
                            key_span: field.key_span.clone(),
                            span: value.span(),
                        }
                        .wrong_type_value(
                            value,
                            &format!("a table (`{label}`)"),
                            report,
                        ),
                    }
                }
                sections
            }
            _ => {
                field.wrong_type(
                    &format!(
                        "an array of tables: write `{label}` with double brackets, once per entry"
                    ),
                    report,
                );
                Vec::new()
            }
        }
    }
}

/// "an integer", "a string", for "got …" in messages.
pub(super) fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

impl<'a> Field<'a> {
    pub(super) fn error(
        &self,
        report: &mut Report<'_>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) {
        report.push(&self.path, self.span.as_ref(), kind, message);
    }

    pub(super) fn invalid(&self, report: &mut Report<'_>, message: impl Into<String>) {
        self.error(report, ErrorKind::Invalid, message);
    }

    /// Reports a key that exists but does not apply, at the key.
    pub(super) fn not_applicable(&self, report: &mut Report<'_>, message: impl Into<String>) {
        report.push(
            &self.path,
            self.key_span.as_ref(),
            ErrorKind::NotApplicable,
            message,
        );
    }

    fn wrong_type(&self, expected: &str, report: &mut Report<'_>) {
        let got = with_article(self.item.type_name());
        let message = match report.snippet(self.span.as_ref()) {
            Some(text) if self.item.is_value() => format!("must be {expected}, got {got} ({text})"),
            _ => format!("must be {expected}, got {got}"),
        };
        self.error(report, ErrorKind::WrongType, message);
    }

    fn wrong_type_value(&self, value: &Value, expected: &str, report: &mut Report<'_>) {
        let got = with_article(value.type_name());
        let message = match report.snippet(self.span.as_ref()) {
            Some(text) => format!("must be {expected}, got {got} ({text})"),
            None => format!("must be {expected}, got {got}"),
        };
        self.error(report, ErrorKind::WrongType, message);
    }

    pub(super) fn str(&self, report: &mut Report<'_>) -> Option<&'a str> {
        let s = self.item.as_str();
        if s.is_none() {
            self.wrong_type("a string", report);
        }
        s
    }

    pub(super) fn bool(&self, report: &mut Report<'_>) -> Option<bool> {
        let b = self.item.as_bool();
        if b.is_none() {
            self.wrong_type("true or false", report);
        }
        b
    }

    /// An integer in `range`; `unit` follows the bounds in the message
    /// ("packets"), `why` explains the bounds ("(RFC 3550 §5.1: 7 bits)").
    pub(super) fn integer<T: TryFrom<i64>>(
        &self,
        range: RangeInclusive<i64>,
        unit: &str,
        why: &str,
        report: &mut Report<'_>,
    ) -> Option<T> {
        let Some(n) = self.item.as_integer() else {
            self.wrong_type(
                &format!("a whole number{}", unit_suffix(" of ", unit)),
                report,
            );
            return None;
        };
        if !range.contains(&n) {
            self.invalid(
                report,
                format!(
                    "must be between {} and {}{}{}, got {n}",
                    range.start(),
                    range.end(),
                    unit_suffix(" ", unit),
                    why_suffix(why)
                ),
            );
            return None;
        }
        T::try_from(n).ok()
    }

    /// A `_ms` key: a whole number of milliseconds in `range`.
    pub(super) fn millis(
        &self,
        range: RangeInclusive<u64>,
        why: &str,
        report: &mut Report<'_>,
    ) -> Option<Duration> {
        let start = i64::try_from(*range.start()).unwrap_or(i64::MAX);
        let end = i64::try_from(*range.end()).unwrap_or(i64::MAX);
        self.integer::<u64>(start..=end, "milliseconds", why, report)
            .map(Duration::from_millis)
    }

    /// A byte size (integer bytes or `"16 MiB"`) in `range`.
    pub(super) fn size(
        &self,
        range: RangeInclusive<ByteSize>,
        why: &str,
        report: &mut Report<'_>,
    ) -> Option<ByteSize> {
        let size = match self.item.as_value() {
            Some(Value::Integer(n)) => match u64::try_from(*n.value()) {
                Ok(n) => ByteSize::bytes(n),
                Err(_) => {
                    self.invalid(
                        report,
                        format!("must be a size in bytes, got {}", n.value()),
                    );
                    return None;
                }
            },
            Some(Value::String(s)) => match ByteSize::parse(s.value()) {
                Ok(size) => size,
                Err(e) => {
                    self.invalid(report, format!("must be a size: {e}; got {:?}", s.value()));
                    return None;
                }
            },
            _ => {
                self.wrong_type(
                    "a size: a number of bytes or a string such as \"16 MiB\"",
                    report,
                );
                return None;
            }
        };
        if !range.contains(&size) {
            let shown = if size.as_u64() < 1024 || size.to_string().ends_with("bytes") {
                size.to_string()
            } else {
                format!("{size} ({} bytes)", size.as_u64())
            };
            self.invalid(
                report,
                format!(
                    "must be between {} and {}{}, got {shown}",
                    range.start(),
                    range.end(),
                    why_suffix(why)
                ),
            );
            return None;
        }
        Some(size)
    }

    /// A local socket address to bind: an IP literal and a non-zero port.
    pub(super) fn bind_addr(&self, report: &mut Report<'_>) -> Option<SocketAddr> {
        let addr = self.socket_addr(report)?;
        if addr.port() == 0 {
            self.invalid(report, "must have a fixed port (1 to 65535); port 0 would bind a random one that nobody can send to");
            return None;
        }
        Some(addr)
    }

    /// A remote socket address: an IP literal that is not unspecified, and a
    /// non-zero port.
    pub(super) fn destination_addr(&self, report: &mut Report<'_>) -> Option<SocketAddr> {
        let addr = self.socket_addr(report)?;
        if addr.port() == 0 || addr.ip().is_unspecified() {
            self.invalid(
                report,
                format!(
                    "must be the receiver's address and port, got {addr}: {} is not a destination",
                    if addr.port() == 0 {
                        "port 0"
                    } else {
                        "an unspecified address"
                    }
                ),
            );
            return None;
        }
        Some(addr)
    }

    fn socket_addr(&self, report: &mut Report<'_>) -> Option<SocketAddr> {
        let text = self.str(report)?;
        match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.invalid(
                    report,
                    format!(
                        "must be an IP address and port such as \"0.0.0.0:9000\" or \"[::1]:9000\" (host names are not resolved), got {text:?}"
                    ),
                );
                None
            }
        }
    }

    pub(super) fn ip(&self, report: &mut Report<'_>) -> Option<IpAddr> {
        let text = self.str(report)?;
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.invalid(
                    report,
                    format!("must be an IP address such as \"239.1.1.1\" (no port, no host name), got {text:?}"),
                );
                None
            }
        }
    }

    /// `multicast_interface`: the IPv4 address of a local interface
    /// (`IP_MULTICAST_IF` / `IP_ADD_MEMBERSHIP` take one; "0.0.0.0" is the
    /// default interface).
    pub(super) fn interface_ipv4(&self, report: &mut Report<'_>) -> Option<IpAddr> {
        let ip = self.ip(report)?;
        if !ip.is_ipv4() || ip.is_multicast() {
            self.invalid(
                report,
                format!("must be the IPv4 address of a local interface (or \"0.0.0.0\" for the default), got {ip}"),
            );
            return None;
        }
        Some(ip)
    }

    /// A number (integer or float) in `range`, such as a CPU fraction.
    pub(super) fn fraction(
        &self,
        range: RangeInclusive<f64>,
        why: &str,
        report: &mut Report<'_>,
    ) -> Option<f64> {
        let value = match self.item.as_value() {
            Some(Value::Float(f)) => *f.value(),
            Some(Value::Integer(n)) => *n.value() as f64,
            _ => {
                self.wrong_type("a number such as 0.2", report);
                return None;
            }
        };
        if !range.contains(&value) {
            self.invalid(
                report,
                format!(
                    "must be between {} and {}{}, got {value}",
                    range.start(),
                    range.end(),
                    why_suffix(why)
                ),
            );
            return None;
        }
        Some(value)
    }

    /// A program to run: a path, or a name looked up in `PATH`.
    pub(super) fn program(&self, report: &mut Report<'_>) -> Option<std::path::PathBuf> {
        let text = self.str(report)?;
        if text.trim().is_empty() || text.contains('\0') {
            self.invalid(
                report,
                "must name a program, such as \"ffmpeg\" (looked up in PATH) or \"/usr/local/bin/ffmpeg\"",
            );
            return None;
        }
        Some(text.into())
    }

    /// One of a fixed set of words.
    pub(super) fn choice<T: Copy>(
        &self,
        choices: &[(&'static str, T)],
        report: &mut Report<'_>,
    ) -> Option<T> {
        let text = self.str(report)?;
        if let Some(&(_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(value);
        }
        let names: Vec<&str> = choices.iter().map(|&(n, _)| n).collect();
        let hint = super::suggest::closest(text, names.iter().copied())
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        self.invalid(
            report,
            format!("must be {}, got {text:?}{hint}", one_of(&names)),
        );
        None
    }
}

fn unit_suffix(prefix: &str, unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!("{prefix}{unit}")
    }
}

fn why_suffix(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    }
}

/// Whether two sockets bound to `a` and `b` would compete for the same
/// datagrams: same port and the same IP, or either is a wildcard that covers
/// the other (`0.0.0.0` covers every IPv4 address; `::` covers every IPv6
/// address and, dual-stack by default on Linux, every IPv4 one too).
pub(super) fn binds_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() {
        return false;
    }
    let covers = |wild: IpAddr, other: IpAddr| {
        wild.is_unspecified() && (wild.is_ipv6() || wild.is_ipv4() == other.is_ipv4())
    };
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

/// `a, b or c` for messages.
pub(super) fn one_of<T: Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
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
    fn overlapping_binds() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("fixture address");
        assert!(binds_overlap(a("0.0.0.0:5000"), a("0.0.0.0:5000")));
        assert!(binds_overlap(a("0.0.0.0:5000"), a("10.0.0.1:5000")));
        assert!(binds_overlap(a("10.0.0.1:5000"), a("0.0.0.0:5000")));
        assert!(binds_overlap(a("[::]:5000"), a("10.0.0.1:5000")));
        assert!(binds_overlap(a("[::]:5000"), a("[::1]:5000")));
        assert!(!binds_overlap(a("0.0.0.0:5000"), a("[::1]:5000")));
        assert!(!binds_overlap(a("0.0.0.0:5000"), a("0.0.0.0:5001")));
        assert!(!binds_overlap(a("10.0.0.1:5000"), a("10.0.0.2:5000")));
        assert!(!binds_overlap(a("239.1.1.1:5000"), a("239.1.1.2:5000")));
    }

    #[test]
    fn word_lists() {
        assert_eq!(one_of(&["udp"]), "\"udp\"");
        assert_eq!(one_of(&["udp", "rtp"]), "\"udp\" or \"rtp\"");
        assert_eq!(one_of(&["a", "b", "c"]), "\"a\", \"b\" or \"c\"");
        assert_eq!(one_of::<&str>(&[]), "");
    }
}
