//! `goldens`: the ffprobe-based oracle for switchyard's committed captures.
//!
//! ```text
//! goldens FILE.ts...            print each capture's golden JSON to stdout
//! goldens --write FILE.ts...    write FILE.golden.json next to each capture
//! goldens --check FILE.ts...    recompute and compare with the committed FILE.golden.json
//! ```
//!
//! Deliberately independent of switchyard's own TS/PES/NAL parser: the PIDs, programs, packet
//! counts, PTS values and keyframe flags come from ffprobe; IDR/CRA/BLA/recovery point and
//! slice types come from this crate reading the Annex-B bytes ffprobe dumps (`-show_data`).

mod annexb;
mod diff;
mod ffprobe;
mod golden;
mod json;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Print,
    Write,
    Check,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("goldens: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every check passed.
fn run() -> Result<bool> {
    let mut mode = Mode::Print;
    let mut files = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.to_str() {
            Some("--write") => mode = Mode::Write,
            Some("--check") => mode = Mode::Check,
            Some("-h" | "--help") => {
                println!("usage: goldens [--write | --check] FILE.ts...");
                return Ok(true);
            }
            Some(flag) if flag.starts_with("--") => bail!("unknown option {flag}; see --help"),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() {
        bail!("no capture given; usage: goldens [--write | --check] FILE.ts...");
    }

    let mut all_ok = true;
    for file in &files {
        let probe = ffprobe::probe(file)?;
        let text = golden::golden(file, &probe)
            .with_context(|| format!("building golden for {}", file.display()))?
            .render();
        match mode {
            Mode::Print => print!("{text}"),
            Mode::Write => {
                let path = golden_path(file)?;
                std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("goldens: wrote {}", path.display());
            }
            Mode::Check => all_ok &= check(file, &text)?,
        }
    }
    Ok(all_ok)
}

/// `testdata/x.ts` -> `testdata/x.golden.json`.
fn golden_path(file: &Path) -> Result<PathBuf> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", file.display()))?;
    Ok(file.with_file_name(format!("{stem}.golden.json")))
}

fn check(file: &Path, recomputed: &str) -> Result<bool> {
    let path = golden_path(file)?;
    let committed = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}; create it with --write", path.display()))?;
    let committed_value: serde_json::Value = serde_json::from_str(&committed)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let recomputed_value: serde_json::Value =
        serde_json::from_str(recomputed).expect("the renderer writes valid JSON");
    if committed_value == recomputed_value {
        if committed != recomputed {
            eprintln!(
                "goldens: {}: same content, different layout (rerun --write to normalise)",
                path.display()
            );
        }
        eprintln!("goldens: ok {}", path.display());
        return Ok(true);
    }
    eprintln!(
        "goldens: MISMATCH {} (ffprobe now sees something else)",
        path.display()
    );
    eprint!(
        "{}",
        diff::unified(&committed, recomputed, "committed", "recomputed")
    );
    Ok(false)
}
