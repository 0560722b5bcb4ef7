//! The `switchyard` command line: the I/O shell around the library.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use switchyard::config;
use switchyard::probe::{ProbeError, Prober};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Live-stream packet router with frame-accurate encoder failover"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse an MPEG transport stream: programs, PIDs, codecs, bitrate,
    /// IDR splice points, GOPs, timestamp order, continuity and PCR.
    Probe {
        /// A file path, or `-` for standard input.
        input: PathBuf,
        /// Print the report as JSON (stable keys, see README).
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration file. Prints every error as
    /// `FILE:LINE:COL: key.path: message` (on standard error) and exits
    /// with status 1 if there are any; prints a one-line summary and exits
    /// with 0 if the file is valid.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

/// Exit status for input that is not a transport stream.
const EXIT_NOT_TS: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Probe { input, json } => match probe(&input, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchyard probe: {}: {e:#}", input.display());
                if e.downcast_ref::<ProbeError>().is_some() {
                    ExitCode::from(EXIT_NOT_TS)
                } else {
                    ExitCode::FAILURE
                }
            }
        },
        Command::CheckConfig { file } => check_config(&file),
    }
}

fn check_config(file: &Path) -> ExitCode {
    let name = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("switchyard check-config: {name}: cannot read the file: {e}");
            return ExitCode::FAILURE;
        }
    };
    match config::parse_bytes(&bytes, &name) {
        Ok(config) => {
            println!(
                "{name}: ok — {}, {}, {}",
                count(config.streams.len(), "stream"),
                count(config.input_count(), "input"),
                count(config.output_count(), "output"),
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            let mut stderr = io::stderr().lock();
            for error in &errors {
                // Nothing useful can be done if stderr is gone.
                let _ = writeln!(stderr, "{error}");
            }
            let _ = writeln!(stderr, "{name}: {}", count(errors.len(), "error"));
            ExitCode::FAILURE
        }
    }
}

/// `1 stream`, `3 streams`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn probe(input: &PathBuf, json: bool) -> anyhow::Result<()> {
    let mut reader: Box<dyn Read> = if input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(
            std::fs::File::open(input).with_context(|| "cannot open the input file".to_string())?,
        )
    };
    let mut prober = Prober::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read failed"),
        };
        prober.push(buf.get(..n).unwrap_or_default());
    }
    let report = prober.finish()?;
    let text = if json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.to_string()
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the report"),
    }
}
