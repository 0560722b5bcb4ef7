//! `switchyard check-config FILE`: output format and exit status.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/switchyard.toml");

fn check_config(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run switchyard")
}

/// A file in a directory of its own, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(test: &str, contents: &[u8]) -> TempFile {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-check-config-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, contents).expect("write the config");
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_example_is_valid() {
    let out = check_config(Path::new(EXAMPLE));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{EXAMPLE}: ok — 3 streams, 3 inputs, 4 outputs\n")
    );
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn the_default_config_is_valid() {
    let file = TempFile::new(
        "default",
        switchyard::config::Config::default_toml().as_bytes(),
    );
    let out = check_config(&file.path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(": ok — 0 streams, 0 inputs, 0 outputs\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn every_error_is_listed_with_its_place() {
    let file = TempFile::new(
        "errors",
        b"[srt]
latency_ms = 70000

[[stream]]
id = \"live/cam1\"
passphrase = \"short\"

  [[stream.input]]
  kind = \"udp\"
  listen = \"0.0.0.0:5000\"
  payload_type = 33

  [[stream.output]]
  kind = \"srt\"
  url = \"srt://host:0?streamid=out\"

[[stream]]
id = \"live/cam1\"
",
    );
    let out = check_config(&file.path);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let name = file.path.display();
    let expected = [
        format!(
            "{name}:2:14: srt.latency_ms: must be between 0 and 65535 milliseconds (SRT carries the TSBPD latency in a 16-bit field), got 70000"
        ),
        format!(
            "{name}:6:14: stream[0].passphrase: must be between 10 and 79 characters (SRT passphrase rule), got 5"
        ),
        format!(
            "{name}:11:3: stream[0].input[0].payload_type: `payload_type` only applies to kind = \"rtp\""
        ),
        format!(
            "{name}:15:21: stream[0].output[0].url: has port 0; give the port the receiver listens on (1 to 65535)"
        ),
        format!(
            "{name}:18:6: stream[1].id: stream ids must be unique, and `live/cam1` is used by stream[0].id (line 5) already"
        ),
        format!("{name}: 5 errors"),
    ];
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, expected, "\n{stderr}");
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let file = TempFile::new(
        "unknown",
        b"[srt]\nlisten = \"0.0.0.0:9000\"\nlatncy_ms = 120\n",
    );
    let out = check_config(&file.path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{0}:3:1: srt.latncy_ms: unknown key `latncy_ms` in [srt]; did you mean `latency_ms`?\n{0}: 1 error\n",
            file.path.display()
        )
    );
}

#[test]
fn syntax_and_encoding_errors_have_a_place() {
    let file = TempFile::new("syntax", b"[srt]\nlisten = \"0.0.0.0:9000\n");
    let out = check_config(&file.path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let prefix = format!("{}:2:", file.path.display());
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(stderr.contains(": invalid TOML: "), "{stderr}");

    let file = TempFile::new("latin1", b"[[stream]]\nid = \"caf\xe9\"\n");
    let out = check_config(&file.path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{}:2:10: invalid TOML: the file is not UTF-8 text (byte 0xE9)",
            file.path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_file_is_a_clear_error() {
    let out = check_config(Path::new("/nonexistent/switchyard.toml"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "switchyard check-config: /nonexistent/switchyard.toml: cannot read the file: "
        ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // A directory cannot be read as a file either.
    let file = TempFile::new("directory", b"");
    let out = check_config(&file.dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read the file"));
}
