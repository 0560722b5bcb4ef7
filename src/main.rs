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
    /// Run the router. Without --config it runs the embedded default
    /// configuration: an SRT listener on 0.0.0.0:9000 accepting any
    /// streamid (print it with --print-default-config). Stops gracefully on
    /// SIGINT or SIGTERM. Log level: SWITCHYARD_LOG (e.g. `debug`,
    /// `switchyard=debug`), default `info`.
    Run {
        /// The TOML configuration file (see examples/switchyard.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the embedded default configuration and exit.
        #[arg(long)]
        print_default_config: bool,
        /// Log lines as JSON objects instead of text.
        #[arg(long)]
        log_json: bool,
    },
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
        Command::Run {
            config,
            print_default_config,
            log_json,
        } => {
            if print_default_config {
                print!("{}", config::Config::default_toml());
                return ExitCode::SUCCESS;
            }
            run(config.as_deref(), log_json)
        }
    }
}

/// How long shutdown waits for outputs to flush and tasks to end.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn run(file: Option<&Path>, log_json: bool) -> ExitCode {
    init_logging(log_json);
    install_panic_hook();
    let config = match file {
        None => config::parse(config::Config::default_toml(), "<default config>"),
        Some(file) => {
            let name = file.display().to_string();
            match std::fs::read(file) {
                Ok(bytes) => config::parse_bytes(&bytes, &name),
                Err(e) => {
                    eprintln!("switchyard run: {name}: cannot read the configuration: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let config = match config {
        Ok(config) => std::sync::Arc::new(config),
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!(
                "switchyard run: the configuration has {}",
                count(errors.len(), "error")
            );
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchyard")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("switchyard run: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let router = match switchyard::app::Router::start(config).await {
            Ok(router) => router,
            Err(e) => {
                eprintln!("switchyard run: {e}");
                return ExitCode::FAILURE;
            }
        };
        let signal = wait_for_signal().await;
        tracing::info!("{signal}: shutting down");
        if router.shutdown(SHUTDOWN_GRACE).await {
            tracing::info!("stopped");
        } else {
            tracing::warn!("stopped; some tasks did not finish within {SHUTDOWN_GRACE:?}");
        }
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers Ctrl-C still kills the process; there is
        // just no graceful path.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,srt_protocol=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Panics are contained per connection (srt-protocol's are caught by the
/// SRT endpoint) and per task; a peer that can trigger them must not be able
/// to make each one expensive, so the hook logs one line without a
/// backtrace, at most one a second, counting the rest.
fn install_panic_hook() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    std::panic::set_hook(Box::new(|info| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if LAST.swap(now, Ordering::Relaxed) == now {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            %location, suppressed = SUPPRESSED.swap(0, Ordering::Relaxed),
            "panic contained: {message}"
        );
    }));
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
