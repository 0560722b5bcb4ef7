//! `[[stream.output]]`: where a stream goes (issue 3, point 6). Players
//! pulling with `m=request` need no entry (see `allow_pull`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::error::ErrorKind;
use super::reader::{Report, Section, one_of};
use super::srt_url::SrtUrl;

/// Where an output sends the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// `kind = "srt"`: push to `url` as an SRT caller.
    Srt(SrtUrl),
    /// `kind = "udp"`: send datagrams of 7 TS packets to `address`.
    Udp {
        /// `address`: unicast or multicast destination.
        address: SocketAddr,
        /// `ttl`: IP TTL (multicast TTL for a multicast address), 1 to 255;
        /// `None` keeps the system default (1 for multicast).
        ttl: Option<u8>,
        /// `multicast_interface`: local IPv4 address of the interface to
        /// send multicast from; only with an IPv4 multicast `address`.
        multicast_interface: Option<IpAddr>,
    },
    /// `kind = "file"`: record to `path` (MPEG-TS). A relative path is
    /// relative to the directory `switchyard run` is started in.
    File { path: PathBuf },
}

/// Retry delays of a failing output: from `min`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// `reconnect_min_ms`, default 250 ms.
    pub min: Duration,
    /// `reconnect_max_ms`, default 10 s; at least `min`.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    pub kind: OutputKind,
    pub reconnect: Backoff,
}

impl OutputConfig {
    /// A short name for logs and the API, without secrets: `srt://HOST:PORT`,
    /// `udp://ADDRESS`, `file:PATH`.
    pub fn describe(&self) -> String {
        match &self.kind {
            OutputKind::Srt(url) => format!("srt://{}:{}", url.host, url.port),
            OutputKind::Udp { address, .. } => format!("udp://{address}"),
            OutputKind::File { path } => format!("file:{}", path.display()),
        }
    }
}

pub(super) const OUTPUT_KEYS: &[&str] = &[
    "kind",
    "url",
    "address",
    "ttl",
    "multicast_interface",
    "path",
    "reconnect_min_ms",
    "reconnect_max_ms",
];
const KINDS: &[&str] = &["srt", "udp", "file"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Srt,
    Udp,
    File,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Srt => "srt",
            Kind::Udp => "udp",
            Kind::File => "file",
        }
    }

    /// The kind-specific keys that apply to this kind.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Srt => &["url"],
            Kind::Udp => &["address", "ttl", "multicast_interface"],
            Kind::File => &["path"],
        }
    }
}

const ALL_KINDS: [Kind; 3] = [Kind::Srt, Kind::Udp, Kind::File];

impl OutputConfig {
    /// Reads one output. `None` when a required key is missing or invalid
    /// (the error is in `report`).
    pub(super) fn read(section: &Section<'_>, report: &mut Report<'_>) -> Option<OutputConfig> {
        section.check_keys(OUTPUT_KEYS, report);
        let kind = section
            .require(
                "kind",
                &format!("where the stream goes, {}", one_of(KINDS)),
                report,
            )
            .and_then(|f| {
                f.choice(
                    &[("srt", Kind::Srt), ("udp", Kind::Udp), ("file", Kind::File)],
                    report,
                )
            });
        let reconnect = read_backoff(section, report);
        let kind = match kind? {
            Kind::Srt => read_srt(section, report),
            Kind::Udp => read_udp(section, report),
            Kind::File => read_file(section, report),
        };
        Some(OutputConfig {
            kind: kind?,
            reconnect,
        })
    }
}

/// Reports every key of another kind; they would otherwise be silently
/// ignored.
fn check_applicable(section: &Section<'_>, kind: Kind, report: &mut Report<'_>) {
    for other in ALL_KINDS.into_iter().filter(|&k| k != kind) {
        for key in other.keys().iter().filter(|k| !kind.keys().contains(k)) {
            if let Some(f) = section.get(key) {
                f.not_applicable(
                    report,
                    format!("`{key}` only applies to kind = \"{}\"", other.name()),
                );
            }
        }
    }
}

fn read_srt(section: &Section<'_>, report: &mut Report<'_>) -> Option<OutputKind> {
    check_applicable(section, Kind::Srt, report);
    let field = section.require(
        "url",
        "the SRT receiver to push to, such as \"srt://host:9001?streamid=out/cam1\"",
        report,
    )?;
    let text = field.str(report)?;
    match SrtUrl::parse(text) {
        Ok(url) => Some(OutputKind::Srt(url)),
        Err(e) => {
            let span = report.inside_string(&field, e.offset);
            report.push(&field.path, span.as_ref(), ErrorKind::Invalid, e.message);
            None
        }
    }
}

fn read_udp(section: &Section<'_>, report: &mut Report<'_>) -> Option<OutputKind> {
    check_applicable(section, Kind::Udp, report);
    let ttl = section
        .get("ttl")
        .and_then(|f| f.integer(1..=255, "", "IP time to live", report));
    let address = section
        .require(
            "address",
            "the destination, such as \"239.1.1.2:1234\"",
            report,
        )
        .and_then(|f| f.destination_addr(report));
    let interface = match (section.get("multicast_interface"), address) {
        (Some(f), Some(address)) => {
            if !address.ip().is_multicast() {
                f.not_applicable(
                    report,
                    "`multicast_interface` only applies when `address` is a multicast address",
                );
                return None;
            }
            if !address.is_ipv4() {
                f.not_applicable(
                    report,
                    "`multicast_interface` only applies to IPv4 multicast; IPv6 multicast is sent on the default interface",
                );
                return None;
            }
            Some(f.interface_ipv4(report)?)
        }
        _ => None,
    };
    Some(OutputKind::Udp {
        address: address?,
        ttl,
        multicast_interface: interface,
    })
}

fn read_file(section: &Section<'_>, report: &mut Report<'_>) -> Option<OutputKind> {
    check_applicable(section, Kind::File, report);
    let field = section.require(
        "path",
        "the file to record to, such as \"recordings/cam1.ts\"",
        report,
    )?;
    let path = field.str(report)?;
    if path.is_empty() {
        field.invalid(
            report,
            "must not be empty: give the file to record to, such as \"recordings/cam1.ts\"",
        );
        return None;
    }
    if path.ends_with('/') {
        field.invalid(
            report,
            format!("must name a file, got the directory {path:?}"),
        );
        return None;
    }
    if path.contains('\0') {
        field.invalid(report, "must not contain a NUL character");
        return None;
    }
    Some(OutputKind::File {
        path: PathBuf::from(path),
    })
}

fn read_backoff(section: &Section<'_>, report: &mut Report<'_>) -> Backoff {
    const RANGE: std::ops::RangeInclusive<u64> = 10..=600_000;
    let mut backoff = Backoff::default();
    let min = section.get("reconnect_min_ms");
    let max = section.get("reconnect_max_ms");
    let min_value = min.as_ref().map(|f| f.millis(RANGE, "", report));
    let max_value = max.as_ref().map(|f| f.millis(RANGE, "", report));
    if let Some(Some(v)) = min_value {
        backoff.min = v;
    }
    if let Some(Some(v)) = max_value {
        backoff.max = v;
    }
    let both_valid = !matches!(min_value, Some(None)) && !matches!(max_value, Some(None));
    if both_valid
        && backoff.min > backoff.max
        && let Some(at) = min.as_ref().or(max.as_ref())
    {
        at.error(
            report,
            ErrorKind::Conflict,
            format!(
                "`reconnect_min_ms` ({}{}) must not be larger than `reconnect_max_ms` ({}{})",
                backoff.min.as_millis(),
                if min.is_some() { "" } else { ", the default" },
                backoff.max.as_millis(),
                if max.is_some() { "" } else { ", the default" },
            ),
        );
    }
    backoff
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::srt_url::AesKeyLength;
    use super::super::testing::{assert_one_error, config};
    use super::*;

    fn stream(body: &str) -> String {
        format!("[[stream]]\nid = \"s\"\n[[stream.output]]\n{body}")
    }

    fn output(body: &str) -> OutputConfig {
        let c = config(&stream(body));
        c.streams
            .first()
            .and_then(|s| s.outputs.first())
            .cloned()
            .expect("one output")
    }

    #[test]
    fn srt_output() {
        let o = output(
            "kind = \"srt\"\nurl = \"srt://10.0.0.5:9001?streamid=out/cam1&passphrase=0123456789&pbkeylen=24\"\n",
        );
        let OutputKind::Srt(url) = o.kind else {
            panic!("srt output expected, got {o:?}");
        };
        assert_eq!(url.port, 9001);
        assert_eq!(url.key_length, Some(AesKeyLength::Aes192));
        assert_eq!(o.reconnect, Backoff::default());
    }

    #[test]
    fn udp_and_file_outputs() {
        let o = output(
            "kind = \"udp\"\naddress = \"239.1.1.2:1234\"\nttl = 16\nmulticast_interface = \"10.0.0.2\"\nreconnect_min_ms = 100\nreconnect_max_ms = 100\n",
        );
        assert_eq!(
            o,
            OutputConfig {
                kind: OutputKind::Udp {
                    address: "239.1.1.2:1234".parse().expect("addr"),
                    ttl: Some(16),
                    multicast_interface: Some("10.0.0.2".parse().expect("ip")),
                },
                reconnect: Backoff {
                    min: Duration::from_millis(100),
                    max: Duration::from_millis(100)
                },
            }
        );
        let o = output("kind = \"file\"\npath = \"rec/cam1.ts\"\n");
        assert_eq!(
            o.kind,
            OutputKind::File {
                path: "rec/cam1.ts".into()
            }
        );
    }

    #[test]
    fn required_keys_per_kind() {
        assert_one_error(
            &stream("url = \"srt://h:1\"\n"),
            "stream[0].output[0].kind",
            (3, 1),
            ErrorKind::Missing,
            "needs `kind`: where the stream goes, \"srt\", \"udp\" or \"file\"",
        );
        assert_one_error(
            &stream("kind = \"srt\"\n"),
            "stream[0].output[0].url",
            (3, 1),
            ErrorKind::Missing,
            "needs `url`",
        );
        assert_one_error(
            &stream("kind = \"udp\"\n"),
            "stream[0].output[0].address",
            (3, 1),
            ErrorKind::Missing,
            "needs `address`",
        );
        assert_one_error(
            &stream("kind = \"file\"\n"),
            "stream[0].output[0].path",
            (3, 1),
            ErrorKind::Missing,
            "needs `path`",
        );
        assert_one_error(
            &stream("kind = \"rtmp\"\n"),
            "stream[0].output[0].kind",
            (4, 8),
            ErrorKind::Invalid,
            "must be \"srt\", \"udp\" or \"file\", got \"rtmp\"",
        );
    }

    #[test]
    fn fields_of_another_kind() {
        assert_one_error(
            &stream("kind = \"file\"\npath = \"a.ts\"\nurl = \"srt://h:1\"\n"),
            "stream[0].output[0].url",
            (6, 1),
            ErrorKind::NotApplicable,
            "`url` only applies to kind = \"srt\"",
        );
        assert_one_error(
            &stream("kind = \"srt\"\nurl = \"srt://h:1\"\nttl = 4\n"),
            "stream[0].output[0].ttl",
            (6, 1),
            ErrorKind::NotApplicable,
            "`ttl` only applies to kind = \"udp\"",
        );
        assert_one_error(
            &stream("kind = \"udp\"\naddress = \"10.0.0.1:1\"\npath = \"a.ts\"\n"),
            "stream[0].output[0].path",
            (6, 1),
            ErrorKind::NotApplicable,
            "`path` only applies to kind = \"file\"",
        );
    }

    #[test]
    fn url_errors_point_inside_the_string() {
        // `srt://h:0`: the port starts 8 bytes into the URL, 1 after the quote.
        assert_one_error(
            &stream("kind = \"srt\"\nurl = \"srt://h:0\"\n"),
            "stream[0].output[0].url",
            (5, 16),
            ErrorKind::Invalid,
            "port 0",
        );
        assert_one_error(
            &stream("kind = \"srt\"\nurl = 'srt://h:1?passphrase=short'\n"),
            "stream[0].output[0].url",
            (5, 29),
            ErrorKind::Invalid,
            "between 10 and 79 characters (SRT passphrase rule), got 5",
        );
        // With an escape in the literal, offsets in the value no longer match
        // the source: point at the value.
        assert_one_error(
            &stream("kind = \"srt\"\nurl = \"srt://h:1?\\u0070bkeylen=16\"\n"),
            "stream[0].output[0].url",
            (5, 7),
            ErrorKind::Invalid,
            "without `passphrase`",
        );
        assert_one_error(
            &stream("kind = \"srt\"\nurl = \"http://h:1\"\n"),
            "stream[0].output[0].url",
            (5, 8),
            ErrorKind::Invalid,
            "got scheme `http`",
        );
    }

    #[test]
    fn udp_rules() {
        assert_one_error(
            &stream("kind = \"udp\"\naddress = \"0.0.0.0:1234\"\n"),
            "stream[0].output[0].address",
            (5, 11),
            ErrorKind::Invalid,
            "an unspecified address is not a destination",
        );
        assert_one_error(
            &stream("kind = \"udp\"\naddress = \"10.0.0.1:0\"\n"),
            "stream[0].output[0].address",
            (5, 11),
            ErrorKind::Invalid,
            "port 0 is not a destination",
        );
        assert_one_error(
            &stream("kind = \"udp\"\naddress = \"10.0.0.1:1\"\nttl = 0\n"),
            "stream[0].output[0].ttl",
            (6, 7),
            ErrorKind::Invalid,
            "must be between 1 and 255 (IP time to live), got 0",
        );
        assert_one_error(
            &stream(
                "kind = \"udp\"\naddress = \"10.0.0.1:1\"\nmulticast_interface = \"10.0.0.2\"\n",
            ),
            "stream[0].output[0].multicast_interface",
            (6, 1),
            ErrorKind::NotApplicable,
            "only applies when `address` is a multicast address",
        );
        assert_one_error(
            &stream(
                "kind = \"udp\"\naddress = \"[ff3e::1]:1\"\nmulticast_interface = \"10.0.0.2\"\n",
            ),
            "stream[0].output[0].multicast_interface",
            (6, 1),
            ErrorKind::NotApplicable,
            "only applies to IPv4 multicast",
        );
        assert_one_error(
            &stream("kind = \"udp\"\naddress = \"239.0.0.1:1\"\nmulticast_interface = \"eth0\"\n"),
            "stream[0].output[0].multicast_interface",
            (6, 23),
            ErrorKind::Invalid,
            "must be an IP address",
        );
        assert_one_error(
            &stream(
                "kind = \"udp\"\naddress = \"239.0.0.1:1\"\nmulticast_interface = \"239.0.0.2\"\n",
            ),
            "stream[0].output[0].multicast_interface",
            (6, 23),
            ErrorKind::Invalid,
            "IPv4 address of a local interface",
        );
    }

    #[test]
    fn file_rules() {
        assert_one_error(
            &stream("kind = \"file\"\npath = \"\"\n"),
            "stream[0].output[0].path",
            (5, 8),
            ErrorKind::Invalid,
            "must not be empty",
        );
        assert_one_error(
            &stream("kind = \"file\"\npath = \"rec/\"\n"),
            "stream[0].output[0].path",
            (5, 8),
            ErrorKind::Invalid,
            "must name a file",
        );
        assert_one_error(
            &stream("kind = \"file\"\npath = \"a\\u0000b\"\n"),
            "stream[0].output[0].path",
            (5, 8),
            ErrorKind::Invalid,
            "NUL",
        );
    }

    #[test]
    fn backoff_rules() {
        let file = "kind = \"file\"\npath = \"a.ts\"\n";
        assert_one_error(
            &stream(&format!(
                "{file}reconnect_min_ms = 5000\nreconnect_max_ms = 1000\n"
            )),
            "stream[0].output[0].reconnect_min_ms",
            (6, 20),
            ErrorKind::Conflict,
            "`reconnect_min_ms` (5000) must not be larger than `reconnect_max_ms` (1000)",
        );
        assert_one_error(
            &stream(&format!("{file}reconnect_min_ms = 20000\n")),
            "stream[0].output[0].reconnect_min_ms",
            (6, 20),
            ErrorKind::Conflict,
            "(20000) must not be larger than `reconnect_max_ms` (10000, the default)",
        );
        assert_one_error(
            &stream(&format!("{file}reconnect_max_ms = 100\n")),
            "stream[0].output[0].reconnect_max_ms",
            (6, 20),
            ErrorKind::Conflict,
            "(250, the default) must not be larger than `reconnect_max_ms` (100)",
        );
        assert_one_error(
            &stream(&format!("{file}reconnect_min_ms = 1\n")),
            "stream[0].output[0].reconnect_min_ms",
            (6, 20),
            ErrorKind::Invalid,
            "must be between 10 and 600000 milliseconds, got 1",
        );
    }
}
