//! `loadgen`: load test for switchyard, with srt-live-transmit as the
//! baseline, in one command. See `tools/loadgen/README.md`.
//!
//! Phases run one after the other, each with the machine to itself (apart
//! from loadgen): switchyard SRT→UDP, switchyard UDP→UDP, then
//! srt-live-transmit SRT→UDP on the same SRT load. Each phase: bind the
//! receivers, start the relay, start the publishers, wait until every
//! stream arrives, warm up, measure for `--duration` (latency of stamps
//! sent in the window, loss, relay CPU), drain, stop everything.

mod measure;
mod publish;
mod receive;
mod relay;
mod stamp;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use measure::{Clock, Offset, Phase};
use publish::PublishSettings;
use relay::Children;

/// Load generator for switchyard: stamped MPEG-TS publishers, latency and
/// loss receivers, relay CPU, and srt-live-transmit as the baseline.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
struct Args {
    /// The switchyard binary to test (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/switchyard")]
    router_bin: PathBuf,
    /// SRT publishers (switchyard: SRT → UDP output; baseline: the same).
    #[arg(long, default_value_t = 50)]
    srt: usize,
    /// UDP publishers (switchyard: UDP input → UDP output).
    #[arg(long, default_value_t = 50)]
    udp: usize,
    /// Bitrate of every stream: bits per second, with k, M or G (powers of 1000).
    #[arg(long, default_value = "8M", value_parser = parse_bitrate)]
    bitrate: f64,
    /// Measurement window of each phase: 30s, 500ms, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Time between every stream being up and the window opening.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// SRT TSBPD latency asked by the publishers and configured on both
    /// relays. The relay holds each packet this long by design; SRT
    /// latencies are reported above each stream's calibrated release time
    /// (see `measure::Offset`).
    #[arg(long, default_value_t = 120)]
    srt_latency_ms: u64,
    /// The baseline relay; `--no-baseline` skips it.
    #[arg(long, default_value = "srt-live-transmit")]
    baseline_bin: PathBuf,
    #[arg(long)]
    no_baseline: bool,
    /// Seeds the streams' content, start phases and SRT socket ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Generated configuration and the relays' logs go here.
    #[arg(long, default_value = "target/loadgen")]
    out_dir: PathBuf,
}

fn parse_bitrate(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((at, _)) => s.split_at(at),
        None => (s, ""),
    };
    let factor = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" | "m" => 1e6,
        "G" | "g" => 1e9,
        _ => return Err(format!("unknown unit {unit:?}: use k, M or G (e.g. 8M)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|e| format!("{number:?} is not a number: {e}"))?;
    if value.is_nan() || value <= 0.0 {
        return Err("the bitrate must be positive".into());
    }
    Ok(value * factor)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, factor) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 30s, 500ms or 2m: {e}"))?;
    if !(0.0..=86_400.0).contains(&(value * factor)) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(value * factor))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    Switchyard,
    SrtLiveTransmit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Srt,
    Udp,
}

#[derive(Debug, Clone, Copy)]
struct PhaseSpec {
    name: &'static str,
    slug: &'static str,
    relay: Relay,
    transport: Transport,
    streams: usize,
}

/// What one phase measured.
#[derive(Debug)]
struct PhaseResult {
    name: &'static str,
    streams: usize,
    up: usize,
    window: Duration,
    sent: u64,
    received: u64,
    gaps: u64,
    out_of_order: u64,
    foreign: u64,
    /// Relay-added, from the kernel's receive timestamps: the table.
    latency: Histogram<u64>,
    end_to_end: Histogram<u64>,
    /// Relay-added as loadgen's receiver task saw it.
    task_latency: Histogram<u64>,
    untimestamped: u64,
    relay_cpu: f64,
    loadgen_cpu: f64,
    relayed_bytes: u64,
}

impl PhaseResult {
    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    fn gbits(&self) -> f64 {
        self.relayed_bytes as f64 * 8.0 / 1e9
    }

    fn cpu_per_gbit(&self) -> f64 {
        if self.relayed_bytes == 0 {
            f64::NAN
        } else {
            self.relay_cpu / self.gbits()
        }
    }

    fn mbps(&self) -> f64 {
        self.relayed_bytes as f64 * 8.0 / 1e6 / self.window.as_secs_f64()
    }

    fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1e6
    }

    fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1e6
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("loadgen")
        .build()
        .context("starting the tokio runtime")?;
    // The phases run on this (the main) thread: the relays are spawned
    // from it, which their parent-death signal depends on.
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = run(&args) => result,
            _ = tokio::signal::ctrl_c() => bail!("interrupted: every relay stopped"),
            _ = terminate.recv() => bail!("terminated: every relay stopped"),
        }
    })
}

async fn run(args: &Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    if !args.router_bin.exists() {
        bail!(
            "no switchyard binary at {} (build it with `cargo build --release`, or pass --router-bin)",
            args.router_bin.display()
        );
    }
    let clock = Clock;
    let mut specs = Vec::new();
    if args.srt > 0 {
        specs.push(PhaseSpec {
            name: "switchyard SRT→UDP",
            slug: "switchyard-srt",
            relay: Relay::Switchyard,
            transport: Transport::Srt,
            streams: args.srt,
        });
    }
    if args.udp > 0 {
        specs.push(PhaseSpec {
            name: "switchyard UDP→UDP",
            slug: "switchyard-udp",
            relay: Relay::Switchyard,
            transport: Transport::Udp,
            streams: args.udp,
        });
    }
    if args.srt > 0 && !args.no_baseline {
        specs.push(PhaseSpec {
            name: "srt-live-transmit SRT→UDP",
            slug: "srt-live-transmit",
            relay: Relay::SrtLiveTransmit,
            transport: Transport::Srt,
            streams: args.srt,
        });
    }
    let load_before = uptime();
    let mut results = Vec::new();
    for spec in specs {
        eprintln!(
            "loadgen: phase {}: {} streams × {:.1} Mbit/s for {:?}",
            spec.name,
            spec.streams,
            args.bitrate / 1e6,
            args.duration
        );
        let result = run_phase(args, spec, clock).await?;
        results.push(result);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let load_after = uptime();
    print_report(args, &results, &load_before, &load_after);
    Ok(())
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| {
            let f: Vec<&str> = s.split_whitespace().take(3).collect();
            format!("load average {}", f.join(", "))
        })
        .unwrap_or_else(|_| "load average unknown".into())
}

async fn run_phase(args: &Args, spec: PhaseSpec, clock: Clock) -> anyhow::Result<PhaseResult> {
    let dir = args.out_dir.join(spec.slug);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let offset = match spec.transport {
        Transport::Srt => Duration::from_millis(args.srt_latency_ms),
        Transport::Udp => Duration::ZERO,
    };
    let n = spec.streams;
    let calibration = match spec.transport {
        Transport::Srt => Offset::CalibratedPerStream,
        Transport::Udp => Offset::None,
    };
    let phase = Arc::new(Phase::new(spec.name, clock, n, calibration).expect_hold(offset));
    let receivers_stop = CancellationToken::new();
    let publishers_stop = CancellationToken::new();
    // Dropped with this future (error, Ctrl-C): every task stops.
    let _stop_receivers = receivers_stop.clone().drop_guard();
    let _stop_publishers = publishers_stop.clone().drop_guard();

    let sockets = (0..n)
        .map(|_| receive::bind())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outputs = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;

    let mut children = Children::default();
    let localhost = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (relay_pids, targets): (Vec<u32>, Vec<SocketAddr>) = match spec.relay {
        Relay::Switchyard => {
            let srt_port = relay::free_port()?;
            let mut plan = relay::SwitchyardPlan {
                srt_port,
                srt_latency_ms: args.srt_latency_ms,
                srt_outputs: Vec::new(),
                udp_routes: Vec::new(),
            };
            let targets = match spec.transport {
                Transport::Srt => {
                    plan.srt_outputs = outputs.clone();
                    vec![localhost(srt_port); n]
                }
                Transport::Udp => {
                    let ports = (0..n)
                        .map(|_| relay::free_port())
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    plan.udp_routes = ports.iter().copied().zip(outputs.iter().copied()).collect();
                    ports.into_iter().map(localhost).collect()
                }
            };
            let pid = relay::start_switchyard(&mut children, &args.router_bin, &plan, &dir).await?;
            (vec![pid], targets)
        }
        Relay::SrtLiveTransmit => {
            let ports = (0..n)
                .map(|_| relay::free_port())
                .collect::<anyhow::Result<Vec<_>>>()?;
            let pids = relay::start_srt_live_transmit(
                &mut children,
                &args.baseline_bin,
                &ports,
                &outputs,
                args.srt_latency_ms,
                &dir,
            )?;
            (pids, ports.into_iter().map(localhost).collect())
        }
    };

    let mut receivers = JoinSet::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        receivers.spawn(receive::run(
            phase.clone(),
            i,
            socket,
            receivers_stop.clone(),
        ));
    }
    let started = Instant::now();
    let settings = PublishSettings {
        phase: phase.clone(),
        bits_per_second: args.bitrate,
        seed: args.seed,
        stop: publishers_stop.clone(),
        srt_latency: Duration::from_millis(args.srt_latency_ms),
        connect_by: started + Duration::from_secs(15),
    };
    let mut publishers = JoinSet::new();
    match spec.transport {
        Transport::Srt => {
            for (i, target) in targets.into_iter().enumerate() {
                publishers.spawn(publish::srt(
                    settings.clone(),
                    i,
                    target,
                    relay::srt_stream_id(i),
                ));
            }
        }
        Transport::Udp => {
            let settings = settings.clone();
            publishers.spawn_blocking(move || publish::udp_all(&settings, &targets));
        }
    }

    let mut watch = Watch {
        phase: &phase,
        started,
        publishers: &mut publishers,
        receivers: &mut receivers,
        children: &mut children,
        last: None,
    };
    let all_up = watch
        .until(started + Duration::from_secs(20), "starting", |p| {
            p.streams_up() == n
        })
        .await?;
    if !all_up {
        eprintln!(
            "loadgen: {}: only {}/{n} streams arrived after 20 s; measuring those",
            spec.name,
            phase.streams_up()
        );
    }
    watch
        .until(Instant::now() + args.warmup, "warm-up", |_| false)
        .await?;

    let cpu_start = relay::cpu_seconds_sum(&relay_pids)?;
    let own_start = relay::cpu_seconds(std::process::id())?;
    let bytes_start = phase.sum(|s| &s.received_bytes);
    let window_start = Instant::now();
    phase.window.open(clock.now_ns());
    watch
        .until(window_start + args.duration, "measuring", |_| false)
        .await?;
    phase.window.close(clock.now_ns());
    let window = window_start.elapsed();
    let cpu = relay::cpu_seconds_sum(&relay_pids)? - cpu_start;
    let own = relay::cpu_seconds(std::process::id())? - own_start;
    let relayed_bytes = phase.sum(|s| &s.received_bytes) - bytes_start;

    // What was sent in the window and is still in flight (an SRT hop holds
    // it for its latency) arrives before anything is stopped.
    // A relay that fell behind delivers late rather than never: wait until
    // every stamp of the window arrived, or nothing more arrives for a
    // second (at most 10 s).
    let drain_by = Instant::now() + offset + Duration::from_secs(10);
    watch
        .until(
            Instant::now() + offset + Duration::from_millis(200),
            "draining",
            |_| false,
        )
        .await?;
    loop {
        let before = phase.sum(|s| &s.received_in_window);
        let complete = |p: &Phase| p.sum(|s| &s.received_in_window) >= p.sum(|s| &s.sent_in_window);
        let deadline = (Instant::now() + Duration::from_secs(1)).min(drain_by);
        if watch.until(deadline, "draining", complete).await?
            || phase.sum(|s| &s.received_in_window) == before
            || Instant::now() >= drain_by
        {
            break;
        }
    }
    publishers_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while publishers.join_next().await.is_some() {}
    })
    .await;
    publishers.abort_all();
    children.stop();
    receivers_stop.cancel();
    while receivers.join_next().await.is_some() {}

    let latency = phase.latency();
    let result = PhaseResult {
        name: spec.name,
        streams: n,
        up: phase.streams_up(),
        window,
        sent: phase.sum(|s| &s.sent_in_window),
        received: phase.sum(|s| &s.received_in_window),
        gaps: phase.sum(|s| &s.gaps),
        out_of_order: phase.sum(|s| &s.out_of_order),
        foreign: phase.sum(|s| &s.foreign),
        latency: latency.added,
        end_to_end: latency.end_to_end,
        task_latency: latency.task,
        untimestamped: phase.sum(|s| &s.untimestamped),
        relay_cpu: cpu,
        loadgen_cpu: own,
        relayed_bytes,
    };
    eprintln!(
        "loadgen: {}: done: {} lost of {} stamps, p99 {:.3} ms (receiver task: {:.3} ms), relay CPU {:.2} s ({:.0} % of a core), loadgen CPU {:.2} s",
        result.name,
        result.lost(),
        result.sent,
        result.ms(0.99),
        result.task_latency.value_at_quantile(0.99) as f64 / 1e6,
        result.relay_cpu,
        result.relay_cpu / window.as_secs_f64() * 100.0,
        result.loadgen_cpu
    );
    Ok(result)
}

/// Watches a running phase: one progress line a second on stderr, and an
/// error as soon as a publisher or a relay process fails.
struct Watch<'a> {
    phase: &'a Phase,
    started: Instant,
    publishers: &'a mut JoinSet<anyhow::Result<()>>,
    receivers: &'a mut JoinSet<anyhow::Result<()>>,
    children: &'a mut Children,
    /// (time, bytes sent, bytes received) of the last progress line.
    last: Option<(Instant, u64, u64)>,
}

impl Watch<'_> {
    /// Until `deadline` or `done`; true if `done` became true.
    async fn until(
        &mut self,
        deadline: Instant,
        stage: &str,
        done: impl Fn(&Phase) -> bool,
    ) -> anyhow::Result<bool> {
        loop {
            if done(self.phase) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let next_line = self
                .last
                .map_or(now, |(at, _, _)| at + Duration::from_secs(1));
            let wake = next_line
                .min(deadline)
                .min(now + Duration::from_millis(100));
            tokio::select! {
                Some(joined) = self.publishers.join_next() => {
                    joined.context("a publisher task panicked")??;
                }
                Some(joined) = self.receivers.join_next() => {
                    joined.context("a receiver task panicked")??;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
            if let Some(exited) = self.children.exited() {
                bail!("{}: {exited}", self.phase.name);
            }
            if Instant::now() >= next_line {
                self.progress(stage);
            }
        }
    }

    fn progress(&mut self, stage: &str) {
        let now = Instant::now();
        let sent = self.phase.sum(|s| &s.sent_bytes);
        let received = self.phase.sum(|s| &s.received_bytes);
        let (mbps_in, mbps_out) = match self.last {
            Some((at, s0, r0)) => {
                let secs = now.duration_since(at).as_secs_f64().max(1e-3);
                (
                    (sent - s0) as f64 * 8.0 / 1e6 / secs,
                    (received - r0) as f64 * 8.0 / 1e6 / secs,
                )
            }
            None => (0.0, 0.0),
        };
        self.last = Some((now, sent, received));
        let p99 = if self.phase.window.is_open() {
            let h = self.phase.latency().added;
            if h.is_empty() {
                "-".to_string()
            } else {
                format!("{:.3} ms", h.value_at_quantile(0.99) as f64 / 1e6)
            }
        } else {
            "-".to_string()
        };
        eprintln!(
            "[{}] {:6.1}s {:<9} up {}/{} in {:7.1} Mbit/s out {:7.1} Mbit/s lost {} p99 {}",
            self.phase.name,
            now.duration_since(self.started).as_secs_f64(),
            stage,
            self.phase.streams_up(),
            self.phase.streams.len(),
            mbps_in,
            mbps_out,
            self.phase.sum(|s| &s.gaps),
            p99
        );
    }
}

fn print_report(args: &Args, results: &[PhaseResult], load_before: &str, load_after: &str) {
    println!(
        "loadgen: {} SRT + {} UDP streams × {:.1} Mbit/s, {:?} window per phase, SRT latency {} ms, seed {}",
        args.srt,
        args.udp,
        args.bitrate / 1e6,
        args.duration,
        args.srt_latency_ms,
        args.seed
    );
    println!(
        "machine: {} cores; before: {load_before}; after: {load_after}",
        cores()
    );
    println!();
    println!(
        "| path | streams up | relayed Mbit/s | p50 ms | p99 ms | p99.9 ms | max ms | lost / sent | relay CPU % | CPU-s per Gbit |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {}/{} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {} / {} | {:.1} | {:.3} |",
            r.name,
            r.up,
            r.streams,
            r.mbps(),
            r.ms(0.5),
            r.ms(0.99),
            r.ms(0.999),
            r.max_ms(),
            r.lost(),
            r.sent,
            r.relay_cpu / r.window.as_secs_f64() * 100.0,
            r.cpu_per_gbit()
        );
    }
    let find = |name: &str| results.iter().find(|r| r.name == name);
    if let (Some(sy), Some(slt)) = (
        find("switchyard SRT→UDP"),
        find("srt-live-transmit SRT→UDP"),
    ) {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}", a / b)
            } else {
                "-".into()
            }
        };
        println!(
            "| ratio switchyard / srt-live-transmit (SRT→UDP) | | {} | {} | {} | {} | {} | | {} | {} |",
            ratio(sy.mbps(), slt.mbps()),
            ratio(sy.ms(0.5), slt.ms(0.5)),
            ratio(sy.ms(0.99), slt.ms(0.99)),
            ratio(sy.ms(0.999), slt.ms(0.999)),
            ratio(sy.max_ms(), slt.max_ms()),
            ratio(sy.relay_cpu, slt.relay_cpu),
            ratio(sy.cpu_per_gbit(), slt.cpu_per_gbit())
        );
    }
    println!();
    for r in results {
        println!(
            "- {}: end-to-end (kernel receive timestamp) min {:.3} / p50 {:.3} / p99 {:.3} / max {:.3} ms; sequence gaps {}, out of order {}, misrouted {}, loadgen CPU {:.1} %",
            r.name,
            r.end_to_end.min() as f64 / 1e6,
            r.end_to_end.value_at_quantile(0.5) as f64 / 1e6,
            r.end_to_end.value_at_quantile(0.99) as f64 / 1e6,
            r.end_to_end.max() as f64 / 1e6,
            r.gaps,
            r.out_of_order,
            r.foreign,
            r.loadgen_cpu / r.window.as_secs_f64() * 100.0
        );
        println!(
            "- {}: as loadgen's receiver task sees it (its own wake-up delay included, same offset as the table): p50 {:.3} / p99 {:.3} / max {:.3} ms; datagrams without a kernel timestamp {}",
            r.name,
            r.task_latency.value_at_quantile(0.5) as f64 / 1e6,
            r.task_latency.value_at_quantile(0.99) as f64 / 1e6,
            r.task_latency.max() as f64 / 1e6,
            r.untimestamped
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
