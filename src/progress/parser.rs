//! The incremental line splitter and block assembler.

use std::collections::VecDeque;

use super::block::{BlockBuilder, Progress, ValueError};

/// Longest line kept, in bytes; the rest of a longer line is dropped and
/// the line reported with [`LogLine::truncated`]. ffmpeg's longest lines
/// (stream descriptions, x264 settings) are a few hundred bytes.
pub const MAX_LINE: usize = 4096;

/// Events held for [`ProgressParser::poll_event`]; when a caller does not
/// poll, the oldest are dropped and counted in
/// [`ParserStats::events_dropped`].
pub const MAX_PENDING_EVENTS: usize = 256;

/// What the parser hands out.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressEvent {
    /// A complete `-progress` block.
    Progress(Progress),
    /// A line that is not part of a block: ffmpeg's banner, warnings and
    /// errors.
    Log(LogLine),
}

/// An ordinary stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line without its terminator, invalid UTF-8 replaced.
    pub text: String,
    /// The line was longer than [`MAX_LINE`] and was cut.
    pub truncated: bool,
}

/// Counters since the parser was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    pub bytes: u64,
    /// Non-empty lines, whatever their kind.
    pub lines: u64,
    /// `key=value` lines, `progress=` included.
    pub progress_lines: u64,
    pub log_lines: u64,
    /// Blocks completed by a `progress=` line.
    pub blocks: u64,
    /// Lines cut at [`MAX_LINE`].
    pub truncated_lines: u64,
    /// Known keys with a value that did not parse, and `progress=` values
    /// other than `continue`/`end`.
    pub bad_values: u64,
    /// Events dropped because nobody polled.
    pub events_dropped: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct ProgressParser {
    line: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE`] were dropped.
    overflowed: bool,
    block: BlockBuilder,
    events: VecDeque<ProgressEvent>,
    stats: ParserStats,
    last_error: Option<ValueError>,
}

impl ProgressParser {
    pub fn new() -> ProgressParser {
        ProgressParser::default()
    }

    /// Feeds stderr bytes, split anywhere. `\n` and `\r` end a line (the
    /// latter in case `-nostats` is missing and ffmpeg's `\r` status line
    /// appears).
    pub fn push(&mut self, chunk: &[u8]) {
        self.stats.bytes = self.stats.bytes.saturating_add(chunk.len() as u64);
        let mut rest = chunk;
        while let Some(at) = memchr::memchr2(b'\n', b'\r', rest) {
            let (head, tail) = rest.split_at(at);
            self.keep(head);
            self.end_line();
            rest = tail.get(1..).unwrap_or_default();
        }
        self.keep(rest);
    }

    /// Ends the input: a final line without newline is processed. A block
    /// without its `progress=` line is discarded (ffmpeg died mid-block).
    pub fn finish(&mut self) {
        self.end_line();
    }

    /// The next block or log line, oldest first.
    pub fn poll_event(&mut self) -> Option<ProgressEvent> {
        self.events.pop_front()
    }

    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// The most recent value that did not parse, for a log message.
    pub fn last_error(&self) -> Option<&ValueError> {
        self.last_error.as_ref()
    }

    /// A block has started but not ended.
    pub fn in_block(&self) -> bool {
        !self.block.is_empty()
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.overflowed = true;
        }
        self.line
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let truncated = std::mem::take(&mut self.overflowed);
        if line.is_empty() && !truncated {
            return;
        }
        self.stats.lines += 1;
        if truncated {
            self.stats.truncated_lines += 1;
        }
        match (truncated, key_value(&line)) {
            (false, Some((key, value))) => {
                self.stats.progress_lines += 1;
                self.key_value(key, value);
            }
            _ => {
                self.stats.log_lines += 1;
                let text = String::from_utf8_lossy(&line).into_owned();
                self.emit(ProgressEvent::Log(LogLine { text, truncated }));
            }
        }
        // Reuse the allocation for the next line.
        self.line = line;
        self.line.clear();
    }

    fn key_value(&mut self, key: &str, value: &str) {
        if key == "progress" {
            let end = match value.trim() {
                "continue" => false,
                "end" => true,
                other => {
                    self.bad_value(ValueError {
                        key: "progress",
                        value: other.chars().take(64).collect(),
                        expected: "`continue` or `end`",
                    });
                    false
                }
            };
            self.stats.blocks += 1;
            let block = self.block.finish(end);
            self.emit(ProgressEvent::Progress(block));
        } else if let Err(e) = self.block.apply(key, value) {
            self.bad_value(e);
        }
    }

    fn bad_value(&mut self, e: ValueError) {
        self.stats.bad_values += 1;
        self.last_error = Some(e);
    }

    fn emit(&mut self, event: ProgressEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }
}

/// A `-progress` line: a key of `[a-z0-9_]` at the very start of the line,
/// then `=`, then a value without `=`. ffmpeg's log lines start with a
/// space, `[`, a capital letter or a word followed by a space or `:`, so
/// they never match; its one-line stats report (`frame=   60 fps= 30 q=-1.0
/// Lsize=… speed=0.981x`), which ffmpeg 5.1 prints at exit even with
/// `-nostats`, has more `=` and is a log line too.
fn key_value(line: &[u8]) -> Option<(&str, &str)> {
    let eq = memchr::memchr(b'=', line)?;
    let (key, value) = line.split_at(eq);
    let valid_key = !key.is_empty()
        && key
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !valid_key || memchr::memchr(b'=', value.get(1..).unwrap_or_default()).is_some() {
        return None;
    }
    let key = std::str::from_utf8(key).ok()?;
    let value = std::str::from_utf8(value.get(1..).unwrap_or_default()).ok()?;
    Some((key, value))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn capture(name: &str) -> Vec<u8> {
        let path = format!("{}/testdata/progress/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn drain(p: &mut ProgressParser) -> (Vec<Progress>, Vec<LogLine>) {
        let (mut blocks, mut logs) = (Vec::new(), Vec::new());
        while let Some(e) = p.poll_event() {
            match e {
                ProgressEvent::Progress(b) => blocks.push(b),
                ProgressEvent::Log(l) => logs.push(l),
            }
        }
        (blocks, logs)
    }

    fn parse_all(data: &[u8], chunk: usize) -> (Vec<Progress>, Vec<LogLine>, ParserStats) {
        let mut p = ProgressParser::new();
        let (mut blocks, mut logs) = (Vec::new(), Vec::new());
        for c in data.chunks(chunk.max(1)) {
            p.push(c);
            let (b, l) = drain(&mut p);
            blocks.extend(b);
            logs.extend(l);
        }
        p.finish();
        let (b, l) = drain(&mut p);
        blocks.extend(b);
        logs.extend(l);
        (blocks, logs, p.stats())
    }

    #[test]
    fn realtime_x264_capture() {
        let (blocks, logs, stats) = parse_all(&capture("x264_realtime.txt"), 4096);
        assert!(blocks.len() >= 4, "{blocks:?}");
        assert_eq!(stats.bad_values, 0);
        assert_eq!(stats.blocks, blocks.len() as u64);
        let (last, rest) = blocks.split_last().expect("blocks");
        assert!(last.end);
        assert!(rest.iter().all(|b| !b.end));
        // The first block is the start-up one: frame 1, speed `N/A` or a
        // padded `   0x` (both seen in captures), bitrate N/A.
        let first = blocks.first().expect("first");
        assert_eq!(first.frame, Some(1));
        assert!(first.speed.is_none_or(|s| s < 0.1), "{first:?}");
        assert_eq!(first.bitrate_kbps, None);
        assert_eq!(first.out_time_us, Some(0));
        // Later blocks: frames and output time grow, speed is known and near
        // real time (-re), one stream_0_0_q key each.
        for w in blocks.windows(2) {
            let [a, b] = w else { continue };
            assert!(b.frame >= a.frame);
            assert!(b.out_time_us >= a.out_time_us);
            assert!(b.total_size >= a.total_size);
        }
        for b in blocks.iter().skip(1) {
            let speed = b.speed.expect("speed");
            assert!((0.5..1.5).contains(&speed), "{speed}");
            assert!(b.bitrate_kbps.is_some());
            assert_eq!(b.other_keys, 1);
            assert_eq!((b.dup_frames, b.drop_frames), (Some(0), Some(0)));
        }
        assert!(logs.iter().any(|l| l.text.starts_with("[libx264 @")));
        assert!(logs.iter().all(|l| !l.truncated));
        // The exit report ffmpeg prints despite -nostats is a log line.
        assert!(
            logs.iter()
                .any(|l| l.text.starts_with("frame=") && l.text.contains("Lsize="))
        );
    }

    #[test]
    fn stdin_transcode_capture_ends_with_fast_speed() {
        let (blocks, _, stats) = parse_all(&capture("stdin_transcode.txt"), 4096);
        assert_eq!(stats.bad_values, 0);
        let last = blocks.last().expect("blocks");
        assert!(last.end);
        assert!(last.speed.expect("speed") > 2.0);
        assert_eq!(
            last.other_keys, 1,
            "stream_0_0_q: ffmpeg 5.1 prints q for video only"
        );
        assert_eq!(last.frame, Some(100), "the 100-frame capture");
    }

    #[test]
    fn warnings_interleave_without_breaking_blocks() {
        let data = capture("damaged_warnings.txt");
        let (blocks, logs, stats) = parse_all(&data, 4096);
        assert_eq!(stats.bad_values, 0);
        assert!(blocks.len() >= 6);
        assert!(logs.iter().any(|l| l.text.contains("corrupt input packet")));
        assert!(
            logs.iter()
                .any(|l| l.text.starts_with("Error while decoding"))
        );
        assert_eq!(stats.log_lines, logs.len() as u64);
        assert_eq!(stats.lines, stats.log_lines + stats.progress_lines);
        // A warning in the middle of a block does not break it either.
        let mut text = String::from_utf8_lossy(&data).into_owned();
        text = text.replacen("speed=", "[h264 @ 0x1] concealing 3 errors\nspeed=", 3);
        let (again, more_logs, stats) = parse_all(text.as_bytes(), 4096);
        assert_eq!(again, blocks);
        assert_eq!(more_logs.len(), logs.len() + 3);
        assert_eq!(stats.bad_values, 0);
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        for name in [
            "x264_realtime.txt",
            "stdin_transcode.txt",
            "damaged_warnings.txt",
        ] {
            let data = capture(name);
            let whole = parse_all(&data, data.len());
            for chunk in [1, 2, 3, 7, 64, 188, 1000] {
                assert_eq!(
                    parse_all(&data, chunk),
                    whole,
                    "{name} in {chunk}-byte chunks"
                );
            }
        }
    }

    #[test]
    fn long_line_is_capped_and_counted() {
        let mut p = ProgressParser::new();
        let junk = vec![b'a'; MAX_LINE * 3];
        for c in junk.chunks(1000) {
            p.push(c);
            assert!(p.line.len() <= MAX_LINE);
        }
        p.push(b"\nframe=5\nprogress=continue\n");
        let (blocks, logs) = drain(&mut p);
        assert_eq!(logs.len(), 1);
        assert!(
            logs.first()
                .is_some_and(|l| l.truncated && l.text.len() == MAX_LINE)
        );
        assert_eq!(blocks.first().and_then(|b| b.frame), Some(5));
        assert_eq!(p.stats().truncated_lines, 1);
    }

    #[test]
    fn a_truncated_key_value_line_is_not_a_value() {
        let mut p = ProgressParser::new();
        let mut line = b"frame=".to_vec();
        line.extend(std::iter::repeat_n(b'1', MAX_LINE));
        line.extend_from_slice(b"\nprogress=continue\n");
        p.push(&line);
        let (blocks, _) = drain(&mut p);
        assert_eq!(blocks.first().and_then(|b| b.frame), None);
        assert_eq!(p.stats().bad_values, 0);
    }

    #[test]
    fn bad_values_are_counted_and_the_block_survives() {
        let mut p = ProgressParser::new();
        p.push(b"frame=  12\nspeed=fast\nfps=-3\nprogress=maybe\n");
        let (blocks, _) = drain(&mut p);
        let b = blocks.first().expect("a block");
        assert_eq!(b.frame, Some(12));
        assert_eq!(b.speed, None);
        assert_eq!(b.bad_values, 2);
        assert_eq!(p.stats().bad_values, 3);
        assert!(p.last_error().is_some_and(|e| e.key == "progress"));
    }

    #[test]
    fn crlf_and_stats_lines_and_utf8() {
        let mut p = ProgressParser::new();
        p.push(
            b"speed=1.5x\r\nframe=   16 fps=0.0 q=23.0 size=0kB\r\xff\xfe oops\nprogress=end\r\n",
        );
        let (blocks, logs) = drain(&mut p);
        let b = blocks.first().expect("a block");
        assert_eq!(b.speed, Some(1.5));
        assert!(b.end);
        assert_eq!(b.bad_values, 0);
        assert_eq!(logs.len(), 2, "the `\\r` status line is a log line");
        assert!(logs.last().is_some_and(|l| l.text.ends_with(" oops")));
    }

    #[test]
    fn unpolled_events_are_bounded() {
        let mut p = ProgressParser::new();
        for _ in 0..(MAX_PENDING_EVENTS + 10) {
            p.push(b"hello\n");
        }
        assert_eq!(p.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(p.stats().events_dropped, 10);
    }

    #[test]
    fn finish_flushes_a_last_line_and_drops_a_half_block() {
        let mut p = ProgressParser::new();
        p.push(b"frame=1\nprogress=continue\nframe=2\nlast words");
        assert!(p.in_block());
        p.finish();
        let (blocks, logs) = drain(&mut p);
        assert_eq!(blocks.len(), 1);
        assert_eq!(logs.first().map(|l| l.text.as_str()), Some("last words"));
    }
}
