//! `fake-encoder`: a pass-through stand-in for ffmpeg with fault injection,
//! for deterministic encoder tests (issue 4 point 8).
//!
//! It copies MPEG-TS from stdin to stdout unchanged and writes ffmpeg-style
//! `-progress` blocks (`key=value` lines ending `progress=continue`) to
//! stderr every 0.5 s, so a profile with `ffmpeg = "…/fake-encoder"` runs
//! through switchyard's encoder shell like a real encoder.
//!
//! Faults come from flags or from the `FAKE_ENCODER_FAULT` environment
//! variable (the same flags, space- or comma-separated, `=` or a space
//! before the value: `FAKE_ENCODER_FAULT="stall-after-ms=300,slow=0.7"`),
//! so that a caller passing ffmpeg's arguments can still inject them:
//!
//! | flag | effect |
//! |---|---|
//! | `--exit-after-ms N` | exit with status 1, N ms after start (a crash) |
//! | `--exit-at-once` | exit with status 1 before reading anything |
//! | `--stall-after-ms N` | after N ms, keep reading stdin but write nothing (no progress either: ffmpeg prints none while blocked) |
//! | `--garbage-after-ms N` | after N ms, write random bytes instead of the input |
//! | `--slow FACTOR` | output at FACTOR × real time (0.7: each input chunk leaves at its arrival offset / 0.7); progress `out_time` follows |
//!
//! Every other argument is ignored: the ffmpeg options switchyard passes
//! never start with `--`.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    exit_after: Option<Duration>,
    exit_at_once: bool,
    stall_after: Option<Duration>,
    garbage_after: Option<Duration>,
    slow: Option<f64>,
}

fn parse_faults(words: &[String]) -> Result<Faults, String> {
    let mut f = Faults::default();
    let mut it = words.iter().flat_map(|w| {
        // `--flag=value` → `--flag`, `value`
        match w.split_once('=') {
            Some((k, v)) if k.starts_with("--") => vec![k.to_string(), v.to_string()],
            _ => vec![w.clone()],
        }
    });
    let ms = |v: Option<String>, flag: &str| -> Result<Duration, String> {
        v.and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
            .ok_or_else(|| format!("{flag} needs a number of milliseconds"))
    };
    while let Some(word) = it.next() {
        // Anything else is an ffmpeg argument or the value of one.
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        match flag {
            "exit-after-ms" => f.exit_after = Some(ms(it.next(), "--exit-after-ms")?),
            "exit-at-once" => f.exit_at_once = true,
            "stall-after-ms" => f.stall_after = Some(ms(it.next(), "--stall-after-ms")?),
            "garbage-after-ms" => f.garbage_after = Some(ms(it.next(), "--garbage-after-ms")?),
            "slow" => {
                let factor = it
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|x| *x > 0.0 && x.is_finite())
                    .ok_or("--slow needs a positive factor such as 0.7")?;
                f.slow = Some(factor);
            }
            _ => return Err(format!("unknown flag {word}")),
        }
    }
    Ok(f)
}

/// Counters the progress thread reports.
#[derive(Debug, Default)]
struct Stats {
    total_size: AtomicU64,
    chunks: AtomicU64,
    out_time_us: AtomicU64,
    stalled: AtomicBool,
}

fn main() {
    let mut words: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(env) = std::env::var("FAKE_ENCODER_FAULT") {
        words.extend(env.split([' ', ',']).filter(|w| !w.is_empty()).map(|w| {
            if w.starts_with("--") {
                w.to_string()
            } else {
                format!("--{w}")
            }
        }));
    }
    let faults = match parse_faults(&words) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-encoder: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    if faults.exit_at_once {
        eprintln!("fake-encoder: exiting at once as asked");
        std::process::exit(1);
    }
    if let Some(after) = faults.exit_after {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            eprintln!(
                "fake-encoder: exiting after {} ms as asked",
                after.as_millis()
            );
            std::process::exit(1);
        });
    }

    let stats = Arc::new(Stats::default());
    {
        let stats = Arc::clone(&stats);
        std::thread::spawn(move || progress(&stats));
    }

    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send((Instant::now(), chunk)).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut stdout = std::io::stdout().lock();
    let mut rng = Xorshift::seeded();
    let mut first_arrival: Option<Instant> = None;
    while let Ok((arrival, mut chunk)) = rx.recv() {
        let t0 = *first_arrival.get_or_insert(arrival);
        let offset = arrival.saturating_duration_since(t0);
        if let Some(factor) = faults.slow {
            let due = t0 + offset.div_f64(factor);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let now = start.elapsed();
        if faults.stall_after.is_some_and(|a| now >= a) {
            stats.stalled.store(true, Ordering::Relaxed);
            continue;
        }
        if faults.garbage_after.is_some_and(|a| now >= a) {
            rng.fill(&mut chunk);
        }
        if stdout
            .write_all(&chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
        stats
            .total_size
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        // The output's media time is the input's arrival offset: real time
        // for a healthy pass-through, FACTOR × real time when slow.
        stats.out_time_us.store(
            u64::try_from(offset.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
    print_block(&stats, true);
}

fn progress(stats: &Stats) {
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if !stats.stalled.load(Ordering::Relaxed) {
            print_block(stats, false);
        }
    }
}

fn print_block(stats: &Stats, end: bool) {
    let us = stats.out_time_us.load(Ordering::Relaxed);
    let block = format!(
        "frame={}\nfps=0.00\nbitrate=N/A\ntotal_size={}\nout_time_us={us}\nout_time_ms={us}\n\
         out_time={:02}:{:02}:{:02}.{:06}\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress={}\n",
        stats.chunks.load(Ordering::Relaxed),
        stats.total_size.load(Ordering::Relaxed),
        us / 3_600_000_000,
        us / 60_000_000 % 60,
        us / 1_000_000 % 60,
        us % 1_000_000,
        if end { "end" } else { "continue" },
    );
    let _ = std::io::stderr().write_all(block.as_bytes());
}

/// Garbage that is not all zeros and differs between runs.
#[derive(Debug)]
struct Xorshift(u64);

impl Xorshift {
    fn seeded() -> Xorshift {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Xorshift(u64::from_le_bytes(seed) | 1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0 >> 24) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn flags_among_ffmpeg_arguments() {
        let f = parse_faults(&words(
            "-hide_banner -f mpegts -i pipe:0 --stall-after-ms 300 -c:v libx264 --slow=0.7 pipe:1",
        ))
        .expect("valid");
        assert_eq!(f.stall_after, Some(Duration::from_millis(300)));
        assert_eq!(f.slow, Some(0.7));
        assert!(f.exit_after.is_none() && !f.exit_at_once);
        assert!(parse_faults(&words("--slow 0")).is_err());
        assert!(parse_faults(&words("--bogus")).is_err());
        assert!(
            parse_faults(&words("--exit-at-once"))
                .expect("valid")
                .exit_at_once
        );
    }
}
