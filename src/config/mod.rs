//! Configuration: TOML text → a checked [`Config`], or every error in it.
//!
//! Sans-IO: [`parse`] takes the text and a name for messages (usually the
//! path); reading the file is the caller's job. Parsing does not stop at
//! the first problem: every bad key is reported with its key path, its
//! `FILE:LINE:COL` and a sentence that says what is accepted
//! ([`ConfigError`]). The only exception is a TOML syntax error, after which
//! nothing can be read; it is reported alone.
//!
//! The schema, with the built-in defaults (see `examples/switchyard.toml`
//! for a complete example and [`Config::default_toml`] for what runs
//! without a file):
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:8080"        # HTTP API and /metrics (TCP)
//!
//! [srt]                             # the one SRT listener, routed by streamid
//! listen = "0.0.0.0:9000"
//! latency_ms = 120                  # 0..=65535 (16-bit TSBPD delay)
//! recv_buffer = "4 MiB"             # 1 MiB..=512 MiB, asked of the kernel
//! accept_any_stream = true          # unlisted streamids get [defaults]
//! max_connections = 512             # 1..=100000
//! handshake_timeout_ms = 3000       # 100..=60000; half-open handshakes dropped
//!
//! [encoder]                         # see EncoderConfig
//! ffmpeg = "ffmpeg"                 # binary, PATH lookup
//! max_encoders = 8                  # 1..=1024, spares included
//! spares = 1                        # 0..=64, < max_encoders
//! cpu_headroom = 0.2                # 0.0..=0.9 of the host CPU kept free
//! on_no_capacity = "passthrough"    # passthrough | reject
//! default_profile = "h264"          # built in; so is "passthrough"
//! stall_timeout_ms = 500            # 100..=60000
//! slow_for_ms = 3000                # 500..=600000
//! degraded_grace_ms = 2000          # 0..=600000
//!
//! [[profile]]                       # see config/profile.rs; `name` required
//! name = "hd"
//! passthrough = false               # true: no ffmpeg, no other keys
//! ffmpeg = "/usr/bin/ffmpeg"        # default: [encoder] ffmpeg
//! video_codec = "libx264"           # default libx264
//! video_bitrate = "4M"              # kbit/s, or "1500k", "4M"
//! size = "1280x720"
//! preset = "veryfast"
//! tune = "zerolatency"
//! threads = 1                       # 0..=256
//! video_extra = ["-profile:v", "high"]
//! audio_codec = "aac"               # default aac
//! audio_bitrate = 128
//! audio_extra = []
//!
//! [defaults]                        # every key may be overridden per stream
//! buffer = "16 MiB"                 # 64 KiB..=1 TiB
//! buffer_hard_cap = "64 MiB"        # 64 KiB..=1 TiB, >= buffer
//! consumer_queue = "2 MiB"          # 1316 B (7 TS packets)..=1 TiB
//! input_timeout_ms = 500            # 10..=60000
//! revert_after_ms = 10000           # 0..=3600000
//! second_publisher = "backup"       # backup | takeover | reject
//! allow_pull = true
//! profile = "h264"                  # a profile name
//! failover_mode = "low-latency"     # low-latency | hitless
//! standby = "none"                  # none | hot
//!
//! [[stream]]
//! id = "live/cam1"                  # required; see StreamId
//! passphrase = "…"                  # optional, 10..=79 bytes
//! users = ["alice"]                 # optional; absent = anyone
//!
//!   [[stream.input]]                # udp | rtp; see InputConfig
//!   [[stream.output]]               # srt | udp | file; see OutputConfig
//! ```
//!
//! Sizes are integers (bytes) or strings with a unit ([`ByteSize`]).
//! Addresses are IP literals with a port; host names are not resolved
//! (except in SRT output URLs, which are resolved when connecting). Tables
//! may also be written inline (`srt = { listen = "…" }`, `input = [{ … }]`).
//! Unknown keys are errors, with a suggestion when a known key is close.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod claims;
mod encoder;
mod error;
mod input;
mod output;
mod profile;
mod reader;
mod settings;
mod size;
mod srt_url;
mod stream;
mod stream_id;
mod suggest;

use std::net::SocketAddr;
use std::time::Duration;

use crate::encoder::Profile;

pub use encoder::EncoderConfig;
pub use error::{ConfigError, ConfigErrors, ErrorKind, Location};
pub use input::{InputConfig, InputKind, InputRole, Multicast};
pub use output::{Backoff, OutputConfig, OutputKind};
pub use profile::{H264, PASSTHROUGH};
pub use settings::{FailoverMode, SecondPublisher, Standby, StreamSettings};
pub use size::{ByteSize, SizeError};
pub use srt_url::{AesKeyLength, SrtUrl, SrtUrlError};
pub use stream::StreamConfig;
pub use stream_id::{MAX_STREAM_ID_BYTES, Passphrase, PassphraseError, StreamId, StreamIdError};

use claims::Claims;
use reader::{Report, Section};
use settings::{ReadSettings, SETTINGS_KEYS};

/// A checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub api: ApiConfig,
    pub srt: SrtConfig,
    /// `[encoder]`: the pool, placement and health thresholds.
    pub encoder: EncoderConfig,
    /// The built-in profiles (`h264`, `passthrough`), each replaced by a
    /// `[[profile]]` of its name, then the other `[[profile]]` tables in
    /// file order. Names are unique; every stream's
    /// [`StreamSettings::profile`] is one of them.
    pub profiles: Vec<Profile>,
    /// `[defaults]`: the settings of streams that are not listed, and the
    /// base of every listed stream's [`StreamConfig::settings`].
    pub defaults: StreamSettings,
    /// `[[stream]]`, in file order; ids are unique.
    pub streams: Vec<StreamConfig>,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// `listen`: TCP address of the HTTP API and `/metrics`. Default
    /// `127.0.0.1:8080`.
    pub listen: SocketAddr,
}

/// `[srt]`: the one SRT listener. Publishers and players are told apart
/// and routed by their streamid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtConfig {
    /// `listen`: UDP address. Default `0.0.0.0:9000`.
    pub listen: SocketAddr,
    /// `latency_ms`: SRT TSBPD latency, 0 to 65535 ms (a 16-bit field of
    /// the handshake). Default 120 ms.
    pub latency: Duration,
    /// `recv_buffer`: socket receive buffer asked of the kernel (which may
    /// grant less; the listener logs what it got). Default 4 MiB, the size
    /// measured to hold 100 Mbit/s without loss (DESIGN.md). At least 1 MiB:
    /// below that an SRT port loses packets at contribution bitrates. At
    /// most 512 MiB: the kernel doubles the value and keeps it in an `int`.
    pub recv_buffer: ByteSize,
    /// `accept_any_stream`: callers with a streamid not listed in
    /// `[[stream]]` are accepted with `[defaults]`. Default true; when
    /// false they are rejected with SRT reject code 404.
    pub accept_any_stream: bool,
    /// `max_connections`: connections (publishers, players and handshakes
    /// in progress) beyond this are rejected. 1 to 100000, default 512.
    pub max_connections: u32,
    /// `handshake_timeout_ms`: a handshake not completed in this time is
    /// dropped, so forged handshakes cannot pile up. 100 to 60000 ms,
    /// default 3000 ms.
    pub handshake_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            latency: Duration::from_millis(120),
            recv_buffer: ByteSize::mib(4),
            accept_any_stream: true,
            max_connections: 512,
            handshake_timeout: Duration::from_millis(3000),
        }
    }
}

/// The built-in defaults; the same as parsing [`Config::default_toml`].
impl Default for Config {
    fn default() -> Self {
        Config {
            api: ApiConfig::default(),
            srt: SrtConfig::default(),
            encoder: EncoderConfig::default(),
            profiles: profile::built_in(std::path::Path::new("ffmpeg")),
            defaults: StreamSettings::default(),
            streams: Vec::new(),
        }
    }
}

impl Config {
    /// The configuration `switchyard run` uses without `--config`: an SRT
    /// listener on 0.0.0.0:9000 accepting any streamid, the API on
    /// 127.0.0.1:8080, no listed streams.
    pub fn default_toml() -> &'static str {
        include_str!("default.toml")
    }

    /// The listed stream with this id.
    pub fn stream(&self, id: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.id.as_str() == id)
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name() == name)
    }

    /// The profile a stream is encoded with (always found in a checked
    /// configuration).
    pub fn stream_profile(&self, stream: &StreamConfig) -> Option<&Profile> {
        self.profile(&stream.settings.profile)
    }

    pub fn input_count(&self) -> usize {
        self.streams.iter().map(|s| s.inputs.len()).sum()
    }

    pub fn output_count(&self) -> usize {
        self.streams.iter().map(|s| s.outputs.len()).sum()
    }
}

const TOP_KEYS: &[&str] = &["api", "srt", "encoder", "profile", "defaults", "stream"];
const API_KEYS: &[&str] = &["listen"];
const SRT_KEYS: &[&str] = &[
    "listen",
    "latency_ms",
    "recv_buffer",
    "accept_any_stream",
    "max_connections",
    "handshake_timeout_ms",
];

/// The sections a key belongs to, for "it belongs in [srt]" hints.
fn sections_with_key(key: &str) -> Vec<&'static str> {
    let stream_keys = || stream::STREAM_KEYS.iter().chain(SETTINGS_KEYS);
    let sections: [(&str, bool); 8] = [
        ("[api]", API_KEYS.contains(&key)),
        ("[srt]", SRT_KEYS.contains(&key)),
        ("[encoder]", encoder::ENCODER_KEYS.contains(&key)),
        ("[[profile]]", profile::PROFILE_KEYS.contains(&key)),
        ("[defaults]", SETTINGS_KEYS.contains(&key)),
        ("[[stream]]", stream_keys().any(|k| *k == key)),
        ("[[stream.input]]", input::INPUT_KEYS.contains(&key)),
        ("[[stream.output]]", output::OUTPUT_KEYS.contains(&key)),
    ];
    sections
        .into_iter()
        .filter_map(|(label, has)| has.then_some(label))
        .collect()
}

/// Parses and checks a configuration. `source_name` names the text in
/// error messages (usually the file path).
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    let mut report = Report::new(text, source_name);
    let document = match toml_edit::Document::parse(text) {
        Ok(document) => document,
        Err(e) => {
            report.push("", e.span().as_ref(), ErrorKind::Syntax, e.message());
            return Err(ConfigErrors::new(report.into_errors()));
        }
    };
    let config = read(&Section::root(document.as_table()), &mut report);
    if report.has_errors() {
        Err(ConfigErrors::new(report.into_errors()))
    } else {
        Ok(config)
    }
}

/// [`parse`] for bytes: text that is not UTF-8 is a syntax error at the
/// first bad byte (TOML files are UTF-8).
pub fn parse_bytes(bytes: &[u8], source_name: &str) -> Result<Config, ConfigErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, source_name),
        Err(e) => {
            let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let valid = std::str::from_utf8(valid).unwrap_or_default();
            let bad = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
            let mut report = Report::new(valid, source_name);
            report.push(
                "",
                Some(&(valid.len()..valid.len())),
                ErrorKind::Syntax,
                format!("the file is not UTF-8 text (byte 0x{bad:02X}); save it as UTF-8"),
            );
            Err(ConfigErrors::new(report.into_errors()))
        }
    }
}

fn read(root: &Section<'_>, report: &mut Report<'_>) -> Config {
    root.check_keys(TOP_KEYS, report);
    let mut claims = Claims::default();
    let mut config = Config::default();

    if let Some(api) = root.table("api", "[api]", report) {
        api.check_keys(API_KEYS, report);
        if let Some(addr) = api.get("listen").and_then(|f| f.bind_addr(report)) {
            config.api.listen = addr;
        }
    }

    let srt = root.table("srt", "[srt]", report);
    let listen = match &srt {
        Some(srt) => read_srt(srt, &mut config.srt, report),
        None => Listen::Default,
    };
    // The SRT port is claimed even when it is the default, so that an input
    // on 0.0.0.0:9000 is caught.
    match listen {
        Listen::Set(field) => claims.udp_bind(config.srt.listen, &field, report),
        Listen::Default => claims.default_udp_bind(config.srt.listen, "srt.listen"),
        Listen::Invalid => {}
    }

    let encoder_section = root.table("encoder", "[encoder]", report);
    if let Some(section) = &encoder_section {
        config.encoder = EncoderConfig::read(section, report);
    }
    // Profiles before the settings that name them: a profile may be
    // defined anywhere in the file.
    let (read_profiles, rejected) = profile::read_profiles(root, &config.encoder.ffmpeg, report);
    config.profiles = profile::built_in(&config.encoder.ffmpeg);
    for read in read_profiles {
        match config
            .profiles
            .iter_mut()
            .find(|p| p.name() == read.profile.name())
        {
            Some(built_in) => *built_in = read.profile,
            None => config.profiles.push(read.profile),
        }
    }
    let names: Vec<&str> = config
        .profiles
        .iter()
        .map(Profile::name)
        .chain(rejected.iter().map(String::as_str))
        .collect();
    if let Some(name) = encoder_section
        .as_ref()
        .and_then(|s| s.get("default_profile"))
        .and_then(|f| profile::read_profile_name(&f, &names, report))
    {
        config.encoder.default_profile = name;
    }
    let base_settings = StreamSettings {
        profile: config.encoder.default_profile.clone(),
        ..StreamSettings::default()
    };

    let base = ReadSettings {
        settings: base_settings,
        sizes_valid: true,
    };
    let defaults = match root.table("defaults", "[defaults]", report) {
        Some(section) => {
            section.check_keys(SETTINGS_KEYS, report);
            StreamSettings::read(&section, &base, &names, report)
        }
        None => base,
    };
    config.defaults = defaults.settings.clone();

    for section in root.tables("stream", "[[stream]]", report) {
        if let Some(stream) = StreamConfig::read(&section, &defaults, &names, &mut claims, report) {
            config.streams.push(stream);
        }
    }
    config
}

/// How `[srt] listen` was given.
enum Listen<'a> {
    Set(reader::Field<'a>),
    Default,
    Invalid,
}

fn read_srt<'a>(section: &Section<'a>, srt: &mut SrtConfig, report: &mut Report<'_>) -> Listen<'a> {
    section.check_keys(SRT_KEYS, report);
    let listen = match section.get("listen") {
        None => Listen::Default,
        Some(f) => match f.bind_addr(report) {
            Some(addr) => {
                srt.listen = addr;
                Listen::Set(f)
            }
            None => Listen::Invalid,
        },
    };
    if let Some(v) = section.get("latency_ms").and_then(|f| {
        f.millis(
            0..=65_535,
            "SRT carries the TSBPD latency in a 16-bit field",
            report,
        )
    }) {
        srt.latency = v;
    }
    if let Some(v) = section.get("recv_buffer").and_then(|f| {
        f.size(
            ByteSize::MIB..=ByteSize::mib(512),
            "smaller buffers lose packets at contribution bitrates; 4 MiB, the default, holds 100 Mbit/s",
            report,
        )
    }) {
        srt.recv_buffer = v;
    }
    if let Some(v) = section
        .get("accept_any_stream")
        .and_then(|f| f.bool(report))
    {
        srt.accept_any_stream = v;
    }
    if let Some(v) = section
        .get("max_connections")
        .and_then(|f| f.integer(1..=100_000, "", "", report))
    {
        srt.max_connections = v;
    }
    if let Some(v) = section
        .get("handshake_timeout_ms")
        .and_then(|f| f.millis(100..=60_000, "", report))
    {
        srt.handshake_timeout = v;
    }
    listen
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
pub(crate) mod testing {
    //! Helpers for the module's tests.

    use super::*;

    pub(crate) fn config(text: &str) -> Config {
        match parse(text, "test.toml") {
            Ok(config) => config,
            Err(errors) => panic!("expected a valid config:\n{text}\n---\n{errors}"),
        }
    }

    pub(crate) fn errors(text: &str) -> Vec<ConfigError> {
        parse(text, "test.toml")
            .err()
            .map(ConfigErrors::into_vec)
            .unwrap_or_default()
    }

    /// Asserts `errors` has an error at `path` and `(line, column)` of
    /// `kind` whose message contains `words`.
    pub(crate) fn assert_has_error(
        errors: &[ConfigError],
        path: &str,
        (line, column): (usize, usize),
        kind: ErrorKind,
        words: &str,
    ) {
        let found = errors.iter().any(|e| {
            e.path == path
                && e.location == Location { line, column }
                && e.kind == kind
                && e.message.contains(words)
        });
        assert!(
            found,
            "no {kind:?} error at {path} {line}:{column} containing {words:?} in:\n{}",
            errors
                .iter()
                .map(|e| format!("  {e} [{:?}]\n", e.kind))
                .collect::<String>()
        );
    }

    /// Asserts `text` has exactly one error, as described.
    pub(crate) fn assert_one_error(
        text: &str,
        path: &str,
        at: (usize, usize),
        kind: ErrorKind,
        words: &str,
    ) {
        let errors = errors(text);
        assert_has_error(&errors, path, at, kind, words);
        assert_eq!(
            errors.len(),
            1,
            "one error expected for:\n{text}\ngot {errors:#?}"
        );
    }
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::testing::{assert_has_error, assert_one_error, config, errors};
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = include_str!("../../examples/switchyard.toml");

    #[test]
    fn the_default_config_is_valid_and_matches_the_built_in_defaults() {
        let parsed = parse(Config::default_toml(), "default.toml");
        assert_eq!(parsed, Ok(Config::default()));
        let c = Config::default();
        assert_eq!(c.srt.listen, SocketAddr::from(([0, 0, 0, 0], 9000)));
        assert!(c.srt.accept_any_stream);
        assert_eq!(c.api.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert!(c.streams.is_empty());
    }

    #[test]
    fn an_empty_file_is_the_default() {
        assert_eq!(config(""), Config::default());
    }

    #[test]
    fn the_example_covers_the_schema() {
        let c = config(EXAMPLE);
        let inputs: Vec<&InputConfig> = c.streams.iter().flat_map(|s| &s.inputs).collect();
        let outputs: Vec<&OutputConfig> = c.streams.iter().flat_map(|s| &s.outputs).collect();
        assert!(
            inputs
                .iter()
                .any(|i| i.kind == InputKind::Udp && i.multicast.is_none())
        );
        assert!(
            inputs
                .iter()
                .any(|i| i.kind == InputKind::Udp && i.multicast.is_some())
        );
        assert!(
            inputs
                .iter()
                .any(|i| matches!(i.kind, InputKind::Rtp { .. }))
        );
        assert!(outputs.iter().any(|o| matches!(o.kind, OutputKind::Srt(_))));
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o.kind, OutputKind::Udp { .. }))
        );
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o.kind, OutputKind::File { .. }))
        );
        assert!(c.streams.iter().any(|s| s.passphrase.is_some()));
        assert!(c.streams.iter().any(|s| {
            s.input(InputRole::Main).is_some() && s.input(InputRole::Backup).is_some()
        }));
        // An SRT main (a publisher) with a UDP backup.
        assert!(c.streams.iter().any(|s| {
            s.input(InputRole::Main).is_none() && s.input(InputRole::Backup).is_some()
        }));
    }

    #[test]
    fn srt_section() {
        let c = config(
            "[srt]\nlisten = \"[::]:9100\"\nlatency_ms = 0\nrecv_buffer = \"8 MiB\"\naccept_any_stream = false\n\
             max_connections = 100000\nhandshake_timeout_ms = 100\n",
        );
        assert_eq!(
            c.srt,
            SrtConfig {
                listen: "[::]:9100".parse().expect("addr"),
                latency: Duration::ZERO,
                recv_buffer: ByteSize::mib(8),
                accept_any_stream: false,
                max_connections: 100_000,
                handshake_timeout: Duration::from_millis(100),
            }
        );
    }

    #[test]
    fn srt_ranges() {
        assert_one_error(
            "[srt]\nlatency_ms = 65536\n",
            "srt.latency_ms",
            (2, 14),
            ErrorKind::Invalid,
            "must be between 0 and 65535 milliseconds (SRT carries the TSBPD latency in a 16-bit field), got 65536",
        );
        assert_one_error(
            "[srt]\nrecv_buffer = \"512 KiB\"\n",
            "srt.recv_buffer",
            (2, 15),
            ErrorKind::Invalid,
            "must be between 1 MiB and 512 MiB (smaller buffers lose packets at contribution bitrates; 4 MiB, the default, holds 100 Mbit/s), got 512 KiB (524288 bytes)",
        );
        assert_one_error(
            "[srt]\nrecv_buffer = \"1 GiB\"\n",
            "srt.recv_buffer",
            (2, 15),
            ErrorKind::Invalid,
            "got 1 GiB",
        );
        assert_one_error(
            "[srt]\nmax_connections = 0\n",
            "srt.max_connections",
            (2, 19),
            ErrorKind::Invalid,
            "must be between 1 and 100000, got 0",
        );
        assert_one_error(
            "[srt]\nhandshake_timeout_ms = 99\n",
            "srt.handshake_timeout_ms",
            (2, 24),
            ErrorKind::Invalid,
            "between 100 and 60000 milliseconds",
        );
        assert_one_error(
            "[srt]\naccept_any_stream = 1\n",
            "srt.accept_any_stream",
            (2, 21),
            ErrorKind::WrongType,
            "must be true or false, got an integer (1)",
        );
        assert_one_error(
            "[srt]\nlisten = \"0.0.0.0:0\"\n",
            "srt.listen",
            (2, 10),
            ErrorKind::Invalid,
            "port 0",
        );
        assert_one_error(
            "[api]\nlisten = \"127.0.0.1\"\n",
            "api.listen",
            (2, 10),
            ErrorKind::Invalid,
            "must be an IP address and port",
        );
        assert_one_error(
            "[api]\nlisten = \"127.0.0.1:8080\"\nport = 1\n",
            "api.port",
            (3, 1),
            ErrorKind::UnknownKey,
            "unknown key `port` in [api]; accepted keys: listen",
        );
    }

    #[test]
    fn sections_of_the_wrong_shape() {
        assert_one_error(
            "srt = 5\n",
            "srt",
            (1, 7),
            ErrorKind::WrongType,
            "must be a table (`[srt]`), got an integer (5)",
        );
        assert_one_error(
            "[[srt]]\nlisten = \"0.0.0.0:9000\"\n",
            "srt",
            (1, 1),
            ErrorKind::WrongType,
            "must be a table (`[srt]`), got an array of tables",
        );
        assert_one_error(
            "stream = 5\n",
            "stream",
            (1, 10),
            ErrorKind::WrongType,
            "must be an array of tables",
        );
        // Inline and dotted forms are fine.
        assert_eq!(
            config("srt = { latency_ms = 200 }\n").srt.latency,
            Duration::from_millis(200)
        );
        assert_eq!(
            config("srt.latency_ms = 300\n").srt.latency,
            Duration::from_millis(300)
        );
    }

    #[test]
    fn unknown_keys_get_suggestions() {
        assert_one_error(
            "[srt]\nlatncy_ms = 120\n",
            "srt.latncy_ms",
            (2, 1),
            ErrorKind::UnknownKey,
            "unknown key `latncy_ms` in [srt]; did you mean `latency_ms`?",
        );
        assert_one_error(
            "[srt]\nbuffer = \"8 MiB\"\n",
            "srt.buffer",
            (2, 1),
            ErrorKind::UnknownKey,
            "it belongs in [defaults] or [[stream]]",
        );
        assert_one_error(
            "latency_ms = 120\n",
            "latency_ms",
            (1, 1),
            ErrorKind::UnknownKey,
            "unknown key `latency_ms` in the top level; it belongs in [srt]",
        );
        assert_one_error(
            "[defualts]\n",
            "defualts",
            (1, 2),
            ErrorKind::UnknownKey,
            "did you mean `defaults`?",
        );
        assert_one_error(
            "[[streams]]\nid = \"a\"\n",
            "streams",
            (1, 3),
            ErrorKind::UnknownKey,
            "did you mean `stream`?",
        );
        assert_one_error(
            "[defaults]\nfoo = 1\n",
            "defaults.foo",
            (2, 1),
            ErrorKind::UnknownKey,
            "accepted keys: buffer, buffer_hard_cap, consumer_queue, input_timeout_ms, revert_after_ms, second_publisher, allow_pull",
        );
    }

    #[test]
    fn syntax_errors_are_reported_alone_with_their_place() {
        let e = errors("[srt]\nlisten = \"0.0.0.0:9000\"\nlatency_ms = \n");
        assert_has_error(&e, "", (3, 14), ErrorKind::Syntax, "");
        assert_eq!(e.len(), 1);
        assert!(
            e.first()
                .is_some_and(|e| e.to_string().starts_with("test.toml:3:14: invalid TOML: "))
        );
        assert_one_error(
            "[srt]\nlisten = \"a\"\nlisten = \"b\"\n",
            "",
            (3, 1),
            ErrorKind::Syntax,
            "duplicate key",
        );
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        let e = parse_bytes(b"[srt]\nlisten = \"\xff\"\n", "x.toml").expect_err("not UTF-8");
        let e = e.into_vec();
        assert_has_error(
            &e,
            "",
            (2, 11),
            ErrorKind::Syntax,
            "not UTF-8 text (byte 0xFF)",
        );
        assert_eq!(parse_bytes(b"", "x.toml"), Ok(Config::default()));
    }

    #[test]
    fn every_error_is_collected_in_file_order() {
        let text = "\
[srt]
latency_ms = -1
recv_buffer = \"1 KiB\"

[defaults]
second_publisher = \"maybe\"

[[stream]]
id = \"a b\"
passphrase = \"short\"

  [[stream.input]]
  kind = \"udp\"
  listen = \"0.0.0.0:5000\"
  payload_type = 33

  [[stream.output]]
  kind = \"srt\"
  url = \"srt://host:9001?streamid=x&pbkeylen=16\"
  reconnect_min_ms = 500
  reconnect_max_ms = 100

[[stream]]
id = \"b\"
  [[stream.input]]
  kind = \"rtp\"
  listen = \"0.0.0.0:5000\"
";
        let e = errors(text);
        assert_has_error(&e, "srt.latency_ms", (2, 14), ErrorKind::Invalid, "got -1");
        assert_has_error(
            &e,
            "srt.recv_buffer",
            (3, 15),
            ErrorKind::Invalid,
            "between 1 MiB and 512 MiB",
        );
        assert_has_error(
            &e,
            "defaults.second_publisher",
            (6, 20),
            ErrorKind::Invalid,
            "got \"maybe\"",
        );
        assert_has_error(&e, "stream[0].id", (9, 6), ErrorKind::Invalid, "whitespace");
        assert_has_error(
            &e,
            "stream[0].passphrase",
            (10, 14),
            ErrorKind::Invalid,
            "got 5",
        );
        assert_has_error(
            &e,
            "stream[0].input[0].payload_type",
            (15, 3),
            ErrorKind::NotApplicable,
            "only applies to kind = \"rtp\"",
        );
        assert_has_error(
            &e,
            "stream[0].output[0].url",
            (19, 37),
            ErrorKind::Invalid,
            "without `passphrase`",
        );
        assert_has_error(
            &e,
            "stream[0].output[0].reconnect_min_ms",
            (20, 22),
            ErrorKind::Conflict,
            "must not be larger",
        );
        assert_has_error(
            &e,
            "stream[1].input[0].listen",
            (27, 12),
            ErrorKind::Conflict,
            "stream[0].input[0].listen (line 14)",
        );
        assert_eq!(e.len(), 9, "{e:#?}");
        let lines: Vec<usize> = e.iter().map(|e| e.location.line).collect();
        assert!(lines.is_sorted(), "{lines:?}");
    }

    #[test]
    fn lookups() {
        let c = config(EXAMPLE);
        let first = c.streams.first().expect("the example has streams");
        assert_eq!(c.stream(first.id.as_str()), Some(first));
        assert_eq!(c.stream("no/such/stream"), None);
        assert_eq!(
            c.input_count(),
            c.streams.iter().map(|s| s.inputs.len()).sum::<usize>()
        );
        assert!(c.output_count() >= 3);
    }

    /// Keys, values and headers of the schema, shuffled into lines, reach
    /// deep into the validator; plain random text exercises the TOML parser.
    fn toml_like() -> impl Strategy<Value = String> {
        let header = prop::sample::select(vec![
            "[api]",
            "[srt]",
            "[defaults]",
            "[[stream]]",
            "[[stream.input]]",
            "[[stream.output]]",
            "[encoder]",
            "[[profile]]",
            "[stream]",
            "[[srt]]",
            "[x]",
        ])
        .prop_map(str::to_string);
        let key = prop::sample::select(
            TOP_KEYS
                .iter()
                .chain(API_KEYS)
                .chain(SRT_KEYS)
                .chain(SETTINGS_KEYS)
                .chain(stream::STREAM_KEYS)
                .chain(input::INPUT_KEYS)
                .chain(output::OUTPUT_KEYS)
                .chain(encoder::ENCODER_KEYS)
                .chain(profile::PROFILE_KEYS)
                .chain(&["bogus", "latncy_ms"])
                .copied()
                .collect::<Vec<_>>(),
        );
        let value = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0i64..70_000).prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            prop::sample::select(vec![
                "\"udp\"",
                "\"rtp\"",
                "\"srt\"",
                "\"file\"",
                "\"main\"",
                "\"backup\"",
                "\"0.0.0.0:5000\"",
                "\"[::]:9000\"",
                "\"239.1.1.1\"",
                "\"239.1.1.1:5000\"",
                "\"16 MiB\"",
                "\"1 KiB\"",
                "\"live/cam1\"",
                "\"h264\"",
                "\"hitless\"",
                "\"854x480\"",
                "\"1500k\"",
                "[\"-g\", \"50\"]",
                "0.5",
                "\"0123456789\"",
                "\"srt://h:1?streamid=a&passphrase=0123456789\"",
                "\"srt://h:1?pbkeylen=16\"",
                "[\"alice\", \"alice\"]",
                "[]",
                "{ kind = \"udp\" }",
                "[{ id = \"a\" }]",
                "1.5",
            ])
            .prop_map(str::to_string),
            "\"[^\"\\\\\n]{0,20}\"",
        ];
        let line = prop_oneof![header, (key, value).prop_map(|(k, v)| format!("{k} = {v}")),];
        prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, "fuzz.toml");
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_bytes(&bytes, "fuzz.toml");
        }

        #[test]
        fn schema_shaped_text_never_panics_and_errors_point_into_the_text(text in toml_like()) {
            if let Err(errors) = parse(&text, "fuzz.toml") {
                prop_assert!(!errors.is_empty());
                let lines = text.split('\n').count();
                for e in &errors {
                    prop_assert!(e.location.line >= 1 && e.location.line <= lines, "{e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }
    }
}
