//! One `-progress` block and the parsers of its values.

/// One `-progress` block: the values ffmpeg reported at one stats period.
///
/// Every field is `None` when the key was absent or its value `N/A`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// `frame`: video frames output so far.
    pub frame: Option<u64>,
    /// `fps`: ffmpeg's own average output frame rate.
    pub fps: Option<f64>,
    /// `bitrate`, in kbit/s (ffmpeg prints `471.7kbits/s`).
    pub bitrate_kbps: Option<f64>,
    /// `total_size`: bytes written to the output so far.
    pub total_size: Option<u64>,
    /// Output time in microseconds: `out_time_us`, else `out_time_ms`
    /// (also microseconds), else `out_time` (`HH:MM:SS.micros`). Negative
    /// at the start of some `-copyts` runs.
    pub out_time_us: Option<i64>,
    /// `dup_frames`: frames duplicated to keep the output rate.
    pub dup_frames: Option<u64>,
    /// `drop_frames`: frames dropped to keep the output rate.
    pub drop_frames: Option<u64>,
    /// `speed`: output time advanced per wall-clock time (`1.02x` → 1.02).
    pub speed: Option<f64>,
    /// The block ended with `progress=end` (ffmpeg is finishing).
    pub end: bool,
    /// Keys switchyard does not interpret (`stream_0_0_q`, keys of later
    /// ffmpeg versions).
    pub other_keys: u32,
    /// Known keys whose value did not parse (the value is dropped).
    pub bad_values: u32,
}

/// A `-progress` value that is neither `N/A` nor in the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ffmpeg -progress key `{key}` has value `{value}`, which is not {expected}")]
pub struct ValueError {
    pub key: &'static str,
    /// The value as received, cut to 64 bytes.
    pub value: String,
    pub expected: &'static str,
}

impl ValueError {
    fn new(key: &'static str, value: &str, expected: &'static str) -> ValueError {
        let mut end = value.len().min(64);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        ValueError {
            key,
            value: value.get(..end).unwrap_or_default().to_owned(),
            expected,
        }
    }
}

/// Trims the padding and maps `N/A` (and an empty value) to `None`.
fn present(value: &str) -> Option<&str> {
    let v = value.trim();
    (!v.is_empty() && v != "N/A").then_some(v)
}

fn parse_u64(key: &'static str, value: &str) -> Result<Option<u64>, ValueError> {
    present(value)
        .map(|v| {
            v.parse()
                .map_err(|_| ValueError::new(key, v, "a non-negative integer"))
        })
        .transpose()
}

fn parse_i64(key: &'static str, value: &str) -> Result<Option<i64>, ValueError> {
    present(value)
        .map(|v| v.parse().map_err(|_| ValueError::new(key, v, "an integer")))
        .transpose()
}

/// A finite, non-negative decimal (rejects `inf`, `NaN`, `-1`).
fn parse_f64(key: &'static str, value: &str) -> Result<Option<f64>, ValueError> {
    present(value)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| ValueError::new(key, v, "a non-negative number"))
        })
        .transpose()
}

/// `speed`: `1.02x`, `   1x`, `N/A`.
pub fn parse_speed(value: &str) -> Result<Option<f64>, ValueError> {
    let Some(v) = present(value) else {
        return Ok(None);
    };
    let number = v
        .strip_suffix('x')
        .ok_or_else(|| ValueError::new("speed", v, "a number followed by `x`"))?;
    parse_f64("speed", number)
        .and_then(|x| x.ok_or_else(|| ValueError::new("speed", v, "a number followed by `x`")))
        .map(Some)
}

/// `bitrate`: ` 471.7kbits/s`, `N/A`; kbit/s.
pub fn parse_bitrate_kbps(value: &str) -> Result<Option<f64>, ValueError> {
    let Some(v) = present(value) else {
        return Ok(None);
    };
    let number = v
        .strip_suffix("kbits/s")
        .ok_or_else(|| ValueError::new("bitrate", v, "a number followed by `kbits/s`"))?;
    parse_f64("bitrate", number)
        .and_then(|x| {
            x.ok_or_else(|| ValueError::new("bitrate", v, "a number followed by `kbits/s`"))
        })
        .map(Some)
}

/// `out_time`: `[-]HH:MM:SS.ffffff` → microseconds.
pub fn parse_out_time_us(value: &str) -> Result<Option<i64>, ValueError> {
    const EXPECTED: &str = "a time `HH:MM:SS.micros`";
    let Some(v) = present(value) else {
        return Ok(None);
    };
    let bad = || ValueError::new("out_time", v, EXPECTED);
    let (negative, body) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let mut parts = body.splitn(3, ':');
    let (Some(h), Some(m), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if !digits(h) || !digits(m) || !digits(secs) || !(frac.is_empty() || digits(frac)) {
        return Err(bad());
    }
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    // Up to 6 fraction digits are microseconds; more are ignored.
    let mut micros = 0i64;
    for i in 0..6 {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        micros = micros * 10 + d;
    }
    let total = h
        .checked_mul(3600)
        .and_then(|x| x.checked_add(m.checked_mul(60)?))
        .and_then(|x| x.checked_add(secs))
        .and_then(|x| x.checked_mul(1_000_000))
        .and_then(|x| x.checked_add(micros))
        .ok_or_else(bad)?;
    Ok(Some(if negative { -total } else { total }))
}

/// Which field of [`Progress`] a key sets; `out_time_us` outranks
/// `out_time_ms` outranks `out_time`, whatever their order in the block.
#[derive(Debug, Default)]
pub(super) struct BlockBuilder {
    progress: Progress,
    out_time_rank: u8,
    lines: u32,
}

impl BlockBuilder {
    pub(super) fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Applies one `key=value` line (not `progress=`).
    pub(super) fn apply(&mut self, key: &str, value: &str) -> Result<(), ValueError> {
        self.lines = self.lines.saturating_add(1);
        let p = &mut self.progress;
        let result = match key {
            "frame" => parse_u64("frame", value).map(|v| p.frame = v),
            "fps" => parse_f64("fps", value).map(|v| p.fps = v),
            "bitrate" => parse_bitrate_kbps(value).map(|v| p.bitrate_kbps = v),
            "total_size" => parse_u64("total_size", value).map(|v| p.total_size = v),
            "dup_frames" => parse_u64("dup_frames", value).map(|v| p.dup_frames = v),
            "drop_frames" => parse_u64("drop_frames", value).map(|v| p.drop_frames = v),
            "speed" => parse_speed(value).map(|v| p.speed = v),
            "out_time_us" => parse_i64("out_time_us", value).map(|v| self.out_time(3, v)),
            "out_time_ms" => parse_i64("out_time_ms", value).map(|v| self.out_time(2, v)),
            "out_time" => parse_out_time_us(value).map(|v| self.out_time(1, v)),
            _ => {
                self.progress.other_keys = self.progress.other_keys.saturating_add(1);
                Ok(())
            }
        };
        if result.is_err() {
            self.progress.bad_values = self.progress.bad_values.saturating_add(1);
        }
        result
    }

    fn out_time(&mut self, rank: u8, value: Option<i64>) {
        if rank >= self.out_time_rank {
            self.out_time_rank = rank;
            self.progress.out_time_us = value;
        }
    }

    /// Ends the block (`progress=…`) and starts a new one.
    pub(super) fn finish(&mut self, end: bool) -> Progress {
        let mut done = std::mem::take(self).progress;
        done.end = end;
        done
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn speed_forms() {
        assert_eq!(parse_speed("1.02x"), Ok(Some(1.02)));
        assert_eq!(parse_speed("   1x"), Ok(Some(1.0)));
        assert_eq!(parse_speed("40.7x "), Ok(Some(40.7)));
        assert_eq!(parse_speed("N/A"), Ok(None));
        assert_eq!(parse_speed(""), Ok(None));
        assert!(parse_speed("1.02").is_err());
        assert!(parse_speed("x").is_err());
        assert!(parse_speed("-1x").is_err());
        assert!(parse_speed("infx").is_err());
        assert!(parse_speed("NaNx").is_err());
    }

    #[test]
    fn bitrate_forms() {
        assert_eq!(parse_bitrate_kbps(" 471.7kbits/s"), Ok(Some(471.7)));
        assert_eq!(parse_bitrate_kbps("N/A"), Ok(None));
        assert!(parse_bitrate_kbps("471.7").is_err());
    }

    #[test]
    fn out_time_forms() {
        assert_eq!(parse_out_time_us("00:00:00.366678"), Ok(Some(366_678)));
        assert_eq!(parse_out_time_us("01:02:03.5"), Ok(Some(3_723_500_000)));
        assert_eq!(parse_out_time_us("-00:00:01.400000"), Ok(Some(-1_400_000)));
        assert_eq!(parse_out_time_us("00:00:02"), Ok(Some(2_000_000)));
        assert_eq!(parse_out_time_us("N/A"), Ok(None));
        assert!(parse_out_time_us("00:00").is_err());
        assert!(parse_out_time_us("aa:00:00.0").is_err());
        assert!(parse_out_time_us("00:00:0+.0").is_err());
        assert!(parse_out_time_us("99999999999999999:00:00.0").is_err());
    }

    #[test]
    fn out_time_us_outranks_ms_and_text_in_any_order() {
        let mut b = BlockBuilder::default();
        assert!(b.apply("out_time_us", "5").is_ok());
        assert!(b.apply("out_time_ms", "7").is_ok());
        assert!(b.apply("out_time", "00:00:09.000000").is_ok());
        assert_eq!(b.finish(false).out_time_us, Some(5));
        let mut b = BlockBuilder::default();
        assert!(b.apply("out_time", "00:00:09.000000").is_ok());
        assert!(b.apply("out_time_ms", "7").is_ok());
        assert_eq!(b.finish(false).out_time_us, Some(7));
    }

    #[test]
    fn error_reads_as_a_sentence() {
        let e = parse_speed("fast").err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(
                "ffmpeg -progress key `speed` has value `fast`, which is not a number followed by `x`"
            )
        );
    }
}
