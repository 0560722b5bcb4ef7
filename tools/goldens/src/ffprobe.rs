//! Runs ffprobe on a capture and decodes its JSON, including the `-show_data` hex dumps of
//! every packet's payload.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;

/// The subset of `ffprobe -of json` output the oracle reads.
#[derive(Debug, Deserialize)]
pub struct Probe {
    #[serde(default)]
    pub packets: Vec<Packet>,
    #[serde(default)]
    pub programs: Vec<Program>,
    #[serde(default)]
    pub streams: Vec<Stream>,
}

#[derive(Debug, Deserialize)]
pub struct Packet {
    pub stream_index: usize,
    /// Absent when ffprobe has no PTS for the packet (`AV_NOPTS_VALUE`).
    pub pts: Option<i64>,
    /// `K_` / `__` / `_D` …: first character `K` is ffprobe's keyframe flag.
    pub flags: String,
    /// Byte offset of the packet's first TS packet in the file, as a decimal string.
    pub pos: Option<String>,
    pub size: String,
    /// `-show_data` hex dump; see [`decode_hex_dump`].
    pub data: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Program {
    pub program_num: u32,
    pub pmt_pid: u32,
    #[serde(default)]
    pub streams: Vec<Stream>,
}

#[derive(Debug, Deserialize)]
pub struct Stream {
    pub index: usize,
    /// The PID as a hex string, e.g. `"0x100"`.
    pub id: Option<String>,
    pub codec_name: Option<String>,
    pub codec_type: Option<String>,
}

impl Packet {
    pub fn is_ffprobe_keyframe(&self) -> bool {
        self.flags.starts_with('K')
    }

    /// The packet's payload bytes, checked against the `size` ffprobe reports.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        let dump = self
            .data
            .as_deref()
            .with_context(|| format!("packet at pos {:?} has no data dump", self.pos))?;
        let bytes = decode_hex_dump(dump)
            .with_context(|| format!("hex dump of packet at pos {:?}", self.pos))?;
        let size: usize = self.size.parse().context("packet size is not a number")?;
        ensure!(
            bytes.len() == size,
            "packet at pos {:?}: dump has {} bytes, size says {size}",
            self.pos,
            bytes.len()
        );
        Ok(bytes)
    }
}

impl Stream {
    pub fn pid(&self) -> Result<u16> {
        let id = self
            .id
            .as_deref()
            .with_context(|| format!("stream {} has no id", self.index))?;
        let hex = id
            .strip_prefix("0x")
            .with_context(|| format!("stream {} id {id:?} is not 0x-hex", self.index))?;
        u16::from_str_radix(hex, 16).with_context(|| format!("stream {} id {id:?}", self.index))
    }

    pub fn codec(&self) -> &str {
        self.codec_name.as_deref().unwrap_or("unknown")
    }
}

/// Runs ffprobe (`$FFPROBE` or `ffprobe` on PATH) and parses its JSON.
pub fn probe(file: &Path) -> Result<Probe> {
    let ffprobe = std::env::var_os("FFPROBE").unwrap_or_else(|| "ffprobe".into());
    let output = Command::new(&ffprobe)
        .args(["-v", "error", "-of", "json", "-show_data", "-show_entries"])
        .arg(concat!(
            "program=program_num,pmt_pid",
            ":program_stream=index,id,codec_name,codec_type",
            ":stream=index,id,codec_name,codec_type",
            ":packet=stream_index,pts,flags,pos,size,data"
        ))
        .arg(file)
        .output()
        .with_context(|| format!("running {ffprobe:?}: is ffmpeg installed?"))?;
    if !output.status.success() {
        bail!(
            "ffprobe failed on {} ({}): {}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("parsing ffprobe JSON for {}", file.display()))
}

/// Decodes ffprobe's `-show_data` dump. Each line is
/// `%08x: ` + hex bytes (pairs grouped by two, padded to 41 columns) + ASCII column, as written
/// by `writer_print_data` in fftools/ffprobe.c; the ASCII column may itself contain hex digits,
/// so only the fixed-width hex region is read.
pub fn decode_hex_dump(dump: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(dump.len() / 4);
    for (line_no, line) in dump.lines().filter(|l| !l.is_empty()).enumerate() {
        let (offset, rest) = line
            .split_once(": ")
            .with_context(|| format!("dump line {line_no} has no offset: {line:?}"))?;
        let offset = usize::from_str_radix(offset, 16)
            .with_context(|| format!("dump line {line_no} offset {offset:?}"))?;
        ensure!(
            offset == bytes.len(),
            "dump line {line_no} starts at {offset:#x}, expected {:#x}",
            bytes.len()
        );
        let hex_region = rest.get(..41.min(rest.len())).unwrap_or(rest);
        let digits: Vec<u8> = hex_region.bytes().filter(|b| *b != b' ').collect();
        ensure!(
            digits.len().is_multiple_of(2),
            "dump line {line_no}: odd number of hex digits"
        );
        for pair in digits.chunks(2) {
            let text = std::str::from_utf8(pair)?;
            bytes.push(
                u8::from_str_radix(text, 16)
                    .with_context(|| format!("dump line {line_no}: bad hex {text:?}"))?,
            );
        }
        ensure!(
            bytes.len() - offset <= 16,
            "dump line {line_no} holds more than 16 bytes"
        );
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_full_and_short_lines_ignoring_ascii_column() {
        let dump = "\n00000000: 0000 0001 09f0 0000 0001 6764 000b acd9  ..........gd....\n\
                    00000010: 4142 43                                  ABC\n";
        let bytes = decode_hex_dump(dump).unwrap();
        assert_eq!(bytes.len(), 19);
        assert_eq!(&bytes[..5], &[0, 0, 0, 1, 0x09]);
        assert_eq!(&bytes[16..], b"ABC");
    }

    #[test]
    fn ascii_column_with_hex_digits_is_not_read() {
        // Ascii "dead" must not be taken as bytes.
        let dump = "00000000: 6465 6164                                dead\n";
        assert_eq!(decode_hex_dump(dump).unwrap(), b"dead");
    }

    #[test]
    fn rejects_offset_gap() {
        let dump = "00000000: 00\n00000020: 00\n";
        assert!(decode_hex_dump(dump).is_err());
    }
}
