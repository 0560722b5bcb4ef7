//! `chaos`: N live streams through real ffmpeg encoders of a `switchyard
//! run`, while encoders are killed (`SIGKILL`), stopped (`SIGSTOP`) and
//! slowed (a `SIGSTOP`/`SIGCONT` duty cycle steered to 0.7× real time) at
//! random (issue 4, point 9). See README.md beside this file.
//!
//! It spawns the router with a generated config and `--log-json`, one
//! ffmpeg lavfi publisher per stream (UDP in), receives every stream's
//! output (UDP out) and checks it (continuity counters, video PTS order),
//! reads the router's JSON log from its stderr (failover events, target
//! `switchyard::failover`; encoder health and start events), and prints a
//! progress line every second and, at the end, histograms of detection
//! time, output gap and frames lost per failover, and the count of false
//! failovers (failovers off an encoder no fault was injected into).
//! Everything it spawned is killed by PID when it ends, on error and on
//! Ctrl-C.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use nix::sys::signal::Signal;

#[derive(Debug, Parser)]
#[command(about = "Chaos run of switchyard's encoder failover")]
struct Args {
    /// The switchyard binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/switchyard")]
    router_bin: PathBuf,
    /// Streams, each with its own publisher and encoder.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// How long to run: `90s`, `2m`, `10m`.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Faults to inject, comma-separated: kill, stop, slow.
    #[arg(long, default_value = "kill,stop,slow", value_delimiter = ',')]
    faults: Vec<String>,
    /// Inject no fault: every failover is a false one.
    #[arg(long)]
    no_faults: bool,
    /// Mean seconds between two faults (router-wide).
    #[arg(long, default_value_t = 6.0)]
    fault_every: f64,
    /// Seed of the fault schedule (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// First of the loopback ports used (API, SRT, inputs, outputs).
    #[arg(long, default_value_t = 17000)]
    base_port: u16,
    /// x264 preset of the encoders (320x180, one thread).
    #[arg(long, default_value = "ultrafast")]
    preset: String,
    /// Streams alternate low-latency and hitless; this forces one mode.
    #[arg(long)]
    mode: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}`: a number and s, m or h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("`{s}`: the unit is s, m or h")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Kill,
    Stop,
    Slow,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Slow => "slow",
        }
    }
}

/// Children killed by PID when dropped.
#[derive(Default)]
struct Spawned(Vec<(String, Child)>);

impl Spawned {
    fn kill_all(&mut self) {
        for (_, child) in &mut self.0 {
            signal(child.id(), Signal::SIGCONT);
            signal(child.id(), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, child) in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("chaos: {name} (pid {}) did not stop: SIGKILL", child.id());
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.0.clear();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

#[derive(Debug, Clone)]
struct Failover {
    at: Instant,
    stream: String,
    from: u64,
    reason: String,
    detection_ms: f64,
    gap_ms: f64,
    frames_lost: i64,
}

#[derive(Debug, Clone)]
struct Health {
    at: Instant,
    stream: String,
    encoder: u64,
    to: String,
    reason: String,
}

/// What the router's log said.
#[derive(Debug, Default)]
struct Log {
    pids: HashMap<(String, u64), u32>,
    active: HashMap<String, (u64, Instant)>,
    failovers: Vec<Failover>,
    health: Vec<Health>,
    gave_up: Vec<String>,
    lines: u64,
}

impl Log {
    fn line(&mut self, line: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        self.lines += 1;
        let at = Instant::now();
        let f = &v["fields"];
        let text = |k: &str| match &f[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let num = |k: &str| match &f[k] {
            serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        let mut stream = text("stream");
        let mut encoder = num("encoder") as u64;
        // The encoder shell labels its events `STREAM#ID` (and logs them
        // first).
        if stream.is_empty()
            && let Some((s, id)) = text("encoder").rsplit_once('#')
        {
            stream = s.to_string();
            encoder = id.parse().unwrap_or(0);
        }
        if v["target"] == "switchyard::failover" {
            let to = num("to") as u64;
            self.active.insert(stream.clone(), (to, at));
            self.failovers.push(Failover {
                at,
                stream,
                from: num("from") as u64,
                reason: text("reason"),
                detection_ms: num("detection_ms"),
                gap_ms: num("gap_ms"),
                frames_lost: num("frames_lost") as i64,
            });
            return;
        }
        match text("message").as_str() {
            "encoder started" => {
                self.pids.insert((stream, encoder), num("pid") as u32);
            }
            "publishing encoder output" => {
                self.active.insert(stream, (encoder, at));
            }
            // The shell's event comes first; the stream task's repeats it.
            "encoder health" if v["target"] == "switchyard::encoder::process" => {
                self.health.push(Health {
                    at,
                    stream,
                    encoder,
                    to: text("to"),
                    reason: text("reason"),
                })
            }
            "publishing the input unencoded (passthrough)"
            | "stream stopped: no encoder could run it" => self.gave_up.push(stream),
            _ => {}
        }
    }
}

/// One stream's received output, checked.
#[derive(Debug, Default, Clone)]
struct Output {
    bytes: u64,
    frames: u64,
    cc_errors: u64,
    pts_backwards: u64,
    duplicate_pts: u64,
    last_pts: Option<u64>,
    cc: HashMap<u16, u8>,
}

impl Output {
    fn datagram(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for p in data.chunks_exact(188) {
            self.packet(p);
        }
    }

    fn packet(&mut self, p: &[u8]) {
        let [0x47, b1, b2, b3, ..] = *p else { return };
        let pid = u16::from(b1 & 0x1F) << 8 | u16::from(b2);
        if pid == 0x1FFF {
            return;
        }
        let afc = (b3 >> 4) & 3;
        let cc = b3 & 0x0F;
        let discontinuity = afc & 2 != 0
            && p.get(4).is_some_and(|&l| l > 0)
            && p.get(5).is_some_and(|&f| f & 0x80 != 0);
        if afc & 1 != 0 {
            match self.cc.insert(pid, cc) {
                Some(last) if !discontinuity && cc != (last + 1) & 0x0F && cc != last => {
                    self.cc_errors += 1;
                }
                _ => {}
            }
        }
        if b1 & 0x40 == 0 || afc & 1 == 0 {
            return;
        }
        let start = if afc & 2 != 0 {
            5 + usize::from(p.get(4).copied().unwrap_or(0))
        } else {
            4
        };
        let Some(pes) = p.get(start..start + 14) else {
            return;
        };
        if pes[..3] != [0, 0, 1] || !(0xE0..=0xEF).contains(&pes[3]) || pes[7] & 0x80 == 0 {
            return;
        }
        let pts = (u64::from(pes[9] & 0x0E) << 29)
            | (u64::from(pes[10]) << 22)
            | (u64::from(pes[11] & 0xFE) << 14)
            | (u64::from(pes[12]) << 7)
            | (u64::from(pes[13]) >> 1);
        self.frames += 1;
        match self.last_pts {
            Some(last) if pts == last => self.duplicate_pts += 1,
            Some(last) if pts < last => self.pts_backwards += 1,
            _ => {}
        }
        self.last_pts = Some(pts);
    }
}

/// xorshift64: a reproducible fault schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Debug)]
struct Injected {
    at: Instant,
    fault: Fault,
    stream: String,
    encoder: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let faults: Vec<Fault> = if args.no_faults {
        Vec::new()
    } else {
        args.faults
            .iter()
            .map(|f| match f.as_str() {
                "kill" => Ok(Fault::Kill),
                "stop" => Ok(Fault::Stop),
                "slow" => Ok(Fault::Slow),
                other => bail!("unknown fault `{other}`: kill, stop or slow"),
            })
            .collect::<Result<_>>()?
    };
    if !args.router_bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release) or pass --router-bin",
            args.router_bin.display()
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }) | 1;
    let mut rng = Rng(seed);
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupted.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                flag.store(true, Ordering::SeqCst);
            }
        });
    }

    let dir = std::env::temp_dir().join(format!("switchyard-chaos-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("chaos.toml");
    let streams: Vec<String> = (0..args.streams).map(|i| format!("chaos/{i}")).collect();
    let port = |offset: usize| args.base_port + offset as u16;
    let mut toml = format!(
        "[api]\nlisten = \"127.0.0.1:{api}\"\n\n[srt]\nlisten = \"127.0.0.1:{srt}\"\naccept_any_stream = false\n\n\
         [encoder]\nmax_encoders = {max}\nspares = 0\n\n\
         [[profile]]\nname = \"chaos\"\nvideo_codec = \"libx264\"\nsize = \"320x180\"\npreset = \"{preset}\"\n\
         tune = \"zerolatency\"\nthreads = 1\nvideo_bitrate = \"300k\"\naudio_codec = \"aac\"\naudio_bitrate = \"64k\"\n\n\
         [defaults]\nprofile = \"chaos\"\n",
        api = port(0),
        srt = port(1),
        max = 2 * args.streams + 2,
        preset = args.preset,
    );
    for (i, id) in streams.iter().enumerate() {
        let mode = args
            .mode
            .clone()
            .unwrap_or_else(|| if i % 2 == 0 { "low-latency" } else { "hitless" }.to_string());
        toml.push_str(&format!(
            "\n[[stream]]\nid = \"{id}\"\nfailover_mode = \"{mode}\"\n  [[stream.input]]\n  kind = \"udp\"\n  \
             listen = \"127.0.0.1:{input}\"\n  [[stream.output]]\n  kind = \"udp\"\n  address = \"127.0.0.1:{output}\"\n",
            input = port(10 + i),
            output = port(100 + i),
        ));
    }
    std::fs::write(&config, &toml)?;

    let stop = Arc::new(AtomicBool::new(false));
    let outputs: Vec<Arc<Mutex<Output>>> = (0..args.streams).map(|_| Arc::default()).collect();
    let mut receivers = Vec::new();
    for (i, out) in outputs.iter().enumerate() {
        let socket = UdpSocket::bind(("127.0.0.1", port(100 + i)))
            .with_context(|| format!("bind the output port {}", port(100 + i)))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let (out, stop) = (out.clone(), stop.clone());
        receivers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    out.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .datagram(&buf[..n]);
                }
            }
        }));
    }

    let mut spawned = Spawned::default();
    let mut router = Command::new(&args.router_bin)
        .args(["run", "--log-json", "--config"])
        .arg(&config)
        .env("SWITCHYARD_LOG", "info,srt_protocol=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", args.router_bin.display()))?;
    let stderr = router.stderr.take().context("router stderr")?;
    let router_pid = router.id();
    spawned.0.push(("router".into(), router));
    let log = Arc::new(Mutex::new(Log::default()));
    {
        let log = log.clone();
        let raw = std::fs::File::create(dir.join("router.log"))?;
        std::thread::spawn(move || {
            use std::io::Write;
            let mut raw = std::io::BufWriter::new(raw);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(raw, "{line}");
                log.lock().unwrap_or_else(|e| e.into_inner()).line(&line);
            }
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..args.streams {
        // A timeline off the frame grid, different per stream.
        let offset = format!("{:.4}", 10.0 + i as f64 * 3.7 + rng.unit() * 0.04);
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args([
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ])
            .args([
                "-tune",
                "zerolatency",
                "-g",
                "25",
                "-keyint_min",
                "25",
                "-sc_threshold",
                "0",
            ])
            .args([
                "-bf", "0", "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "1M",
            ])
            .args(["-c:a", "aac", "-b:a", "128k", "-output_ts_offset", &offset])
            .args(["-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{}?pkt_size=1316", port(10 + i)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("start an ffmpeg publisher")?;
        spawned.0.push((format!("publisher {i}"), child));
    }

    println!(
        "chaos: {} streams, {:?}, faults {:?} every ~{} s, seed {seed}, router pid {router_pid}, \
         files in {}\nload at start: {}",
        args.streams,
        args.duration,
        faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
        args.fault_every,
        dir.display(),
        loadavg(),
    );
    let started = Instant::now();
    let warmup = Duration::from_secs(5);
    let mut next_fault =
        started + warmup + Duration::from_secs_f64(args.fault_every * (0.5 + rng.unit()));
    let mut next_progress = started + Duration::from_secs(1);
    let mut injected: Vec<Injected> = Vec::new();
    let mut slowing: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut ended_early = None;
    while started.elapsed() < args.duration {
        if interrupted.load(Ordering::SeqCst) {
            ended_early = Some("Ctrl-C");
            break;
        }
        if let Some((_, router)) = spawned.0.first_mut()
            && let Ok(Some(status)) = router.try_wait()
        {
            ended_early = Some("the router exited");
            eprintln!("chaos: the router exited: {status}");
            break;
        }
        let now = Instant::now();
        if !faults.is_empty() && now >= next_fault {
            next_fault = now + Duration::from_secs_f64(args.fault_every * (0.5 + rng.unit()));
            let fault = faults[rng.below(faults.len())];
            // A stream whose encoder has been published for 2 s.
            let log_now = log.lock().unwrap_or_else(|e| e.into_inner());
            let eligible: Vec<(String, u64, u32)> = streams
                .iter()
                .filter_map(|s| {
                    let (enc, since) = *log_now.active.get(s)?;
                    let pid = *log_now.pids.get(&(s.clone(), enc))?;
                    (since.elapsed() >= Duration::from_secs(2) && alive(pid))
                        .then(|| (s.clone(), enc, pid))
                })
                .collect();
            drop(log_now);
            if !eligible.is_empty() {
                let (stream, encoder, pid) = eligible[rng.below(eligible.len())].clone();
                let at = Instant::now();
                match fault {
                    Fault::Kill => signal(pid, Signal::SIGKILL),
                    Fault::Stop => signal(pid, Signal::SIGSTOP),
                    Fault::Slow => {
                        let index = streams.iter().position(|s| *s == stream).unwrap_or(0);
                        let (out, log, stream) =
                            (outputs[index].clone(), log.clone(), stream.clone());
                        slowing.push(std::thread::spawn(move || {
                            slow(pid, encoder, &stream, &out, &log)
                        }));
                    }
                }
                println!(
                    "[{:>4}s] fault: {} {stream} encoder {encoder} (pid {pid})",
                    started.elapsed().as_secs(),
                    fault.name()
                );
                injected.push(Injected {
                    at,
                    fault,
                    stream,
                    encoder,
                });
            }
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            let log = log.lock().unwrap_or_else(|e| e.into_inner());
            let false_count = log
                .failovers
                .iter()
                .filter(|f| !caused(f, &injected))
                .count();
            let (mut kbps, mut cc) = (Vec::new(), 0);
            for out in &outputs {
                let o = out.lock().unwrap_or_else(|e| e.into_inner());
                kbps.push(o.bytes * 8 / 1000 / started.elapsed().as_secs().max(1));
                cc += o.cc_errors;
            }
            println!(
                "[{:>4}s] faults {:>3}  failovers {:>3}  false {:>2}  gave up {}  output kbit/s {kbps:?}  CC errors {cc}  load {}",
                started.elapsed().as_secs(),
                injected.len(),
                log.failovers.len(),
                false_count,
                log.gave_up.len(),
                loadavg(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = started.elapsed();
    let end = Instant::now();
    stop.store(true, Ordering::SeqCst);
    for t in slowing {
        let _ = t.join();
    }
    // Publishers first, then the router (which stops its encoders).
    let router = spawned.0.remove(0);
    spawned.kill_all();
    spawned.0.push(router);
    spawned.kill_all();
    for t in receivers {
        let _ = t.join();
    }
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    // Encoders left behind by a router that did not stop them.
    for pid in log.pids.values() {
        if alive(*pid) && is_child_of(*pid, router_pid) {
            eprintln!("chaos: encoder pid {pid} outlived the router: SIGKILL");
            signal(*pid, Signal::SIGKILL);
        }
    }
    report(
        &args,
        ran,
        end,
        ended_early,
        &injected,
        &log,
        &outputs,
        &streams,
    );
    Ok(())
}

fn is_child_of(pid: u32, parent: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok())
        })
        == Some(parent)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Holds an encoder to ~0.7× real time: 200 ms periods, running 2 ms when
/// the stream's published video is ahead of 0.7× since the fault and 40
/// ms when behind (no stop long enough to be a stall), until the stream
/// moves off it or 10 s pass.
fn slow(pid: u32, encoder: u64, stream: &str, out: &Mutex<Output>, log: &Mutex<Log>) {
    let began = Instant::now();
    let pts = || out.lock().unwrap_or_else(|e| e.into_inner()).last_pts;
    let base = pts().unwrap_or(0);
    while began.elapsed() < Duration::from_secs(10) && alive(pid) {
        let moved = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .get(stream)
            .is_some_and(|(active, _)| *active != encoder);
        if moved {
            break;
        }
        let target = base + (0.7 * began.elapsed().as_secs_f64() * 90_000.0) as u64;
        let run = if pts().is_some_and(|p| p > target) {
            2
        } else {
            40
        };
        signal(pid, Signal::SIGCONT);
        std::thread::sleep(Duration::from_millis(run));
        signal(pid, Signal::SIGSTOP);
        std::thread::sleep(Duration::from_millis(200 - run));
    }
    signal(pid, Signal::SIGCONT);
}

/// A failover off an encoder a fault was injected into.
fn caused(f: &Failover, injected: &[Injected]) -> bool {
    injected
        .iter()
        .any(|i| i.stream == f.stream && i.encoder == f.from && i.at <= f.at)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid histogram bounds")
}

fn table_row(name: &str, h: &Histogram<u64>) {
    if h.is_empty() {
        println!(
            "| {name:<34} | {:>5} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} |",
            0, "-", "-", "-", "-", "-"
        );
        return;
    }
    println!(
        "| {name:<34} | {:>5} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} |",
        h.len(),
        h.min(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.max()
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    ran: Duration,
    end: Instant,
    ended_early: Option<&str>,
    injected: &[Injected],
    log: &Log,
    outputs: &[Arc<Mutex<Output>>],
    streams: &[String],
) {
    println!(
        "\nchaos: ran {:.0} s{}, {} streams, encoders {} (320x180, 1 thread), load at end {}",
        ran.as_secs_f64(),
        ended_early
            .map(|why| format!(" (ended early: {why})"))
            .unwrap_or_default(),
        args.streams,
        args.preset,
        loadavg()
    );
    println!(
        "\nfaults injected and what the router saw (detection: fault → the encoder's health event, ms):\n"
    );
    println!("| fault | injected | detected | moved | detection p50 | p90 | max |");
    println!("|---|---|---|---|---|---|---|");
    let mut detection_all = histogram();
    for fault in [Fault::Kill, Fault::Stop, Fault::Slow] {
        let mine: Vec<&Injected> = injected.iter().filter(|i| i.fault == fault).collect();
        if mine.is_empty() {
            continue;
        }
        let mut h = histogram();
        let mut moved = 0;
        for i in &mine {
            if let Some(e) = log.health.iter().find(|h| {
                h.stream == i.stream && h.encoder == i.encoder && h.at >= i.at && h.to != "healthy"
            }) {
                let ms = e.at.saturating_duration_since(i.at).as_millis() as u64;
                let _ = h.record(ms.max(1));
                let _ = detection_all.record(ms.max(1));
            }
            if log
                .failovers
                .iter()
                .any(|f| f.stream == i.stream && f.from == i.encoder)
            {
                moved += 1;
            }
        }
        let q = |q: f64| {
            if h.is_empty() {
                "-".to_string()
            } else {
                h.value_at_quantile(q).to_string()
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            fault.name(),
            mine.len(),
            h.len(),
            moved,
            q(0.5),
            q(0.9),
            if h.is_empty() {
                "-".into()
            } else {
                h.max().to_string()
            }
        );
    }
    let (mut gap_ll, mut gap_hl, mut lost_ll, mut lost_hl, mut grace) = (
        histogram(),
        histogram(),
        histogram(),
        histogram(),
        histogram(),
    );
    let hitless = |stream: &str| {
        streams
            .iter()
            .position(|s| s == stream)
            .is_some_and(|i| args.mode.as_deref().map_or(i % 2 == 1, |m| m == "hitless"))
    };
    for f in &log.failovers {
        let (gap, lost) = if hitless(&f.stream) {
            (&mut gap_hl, &mut lost_hl)
        } else {
            (&mut gap_ll, &mut lost_ll)
        };
        let _ = gap.record((f.gap_ms.max(0.0) as u64).max(1));
        // hdrhistogram has no zero with a lowest bound of 1: frames are
        // counted + 1.
        let _ = lost.record(f.frames_lost.max(0) as u64 + 1);
        if f.detection_ms > 0.0 {
            let _ = grace.record(f.detection_ms as u64);
        }
    }
    println!("\nper failover (hdrhistogram; frames lost are recorded as n + 1, so 1 = none):\n");
    println!(
        "| {:<34} | {:>5} | {:>7} | {:>7} | {:>7} | {:>7} | {:>7} |",
        "metric", "count", "min", "p50", "p90", "p99", "max"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|{}|",
        "-".repeat(36),
        "-".repeat(7),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9)
    );
    table_row("detection, any fault (ms)", &detection_all);
    table_row("degraded → moved (ms)", &grace);
    table_row("output gap, low-latency (wall ms)", &gap_ll);
    table_row("output gap, hitless (wall ms)", &gap_hl);
    table_row("frames lost + 1, low-latency", &lost_ll);
    table_row("frames lost + 1, hitless", &lost_hl);
    let false_failovers: Vec<&Failover> = log
        .failovers
        .iter()
        .filter(|f| !caused(f, injected) && f.at < end)
        .collect();
    println!(
        "\nfailovers: {} ({} caused by an injected fault), false failovers: {}",
        log.failovers.len(),
        log.failovers.len() - false_failovers.len(),
        false_failovers.len()
    );
    for f in &false_failovers {
        println!(
            "  false: {} from encoder {}: {}",
            f.stream, f.from, f.reason
        );
    }
    let false_flags: Vec<&Health> = log
        .health
        .iter()
        .filter(|h| h.to != "healthy" && h.at < end)
        .filter(|h| {
            !injected
                .iter()
                .any(|i| i.stream == h.stream && i.encoder == h.encoder)
        })
        .collect();
    println!(
        "health flags on encoders no fault was injected into: {}",
        false_flags.len()
    );
    for h in false_flags.iter().take(10) {
        println!(
            "  {} encoder {} → {}: {}",
            h.stream, h.encoder, h.to, h.reason
        );
    }
    if !log.gave_up.is_empty() {
        println!("streams that gave up encoding: {:?}", log.gave_up);
    }
    println!("\noutputs (received over UDP, checked):\n");
    println!("| stream | mode | frames | kbit/s | CC errors | PTS backwards | duplicate PTS |");
    println!("|---|---|---|---|---|---|---|");
    for (stream, out) in streams.iter().zip(outputs) {
        let o = out.lock().unwrap_or_else(|e| e.into_inner()).clone();
        println!(
            "| {stream} | {} | {} | {} | {} | {} | {} |",
            if hitless(stream) {
                "hitless"
            } else {
                "low-latency"
            },
            o.frames,
            o.bytes * 8 / 1000 / ran.as_secs().max(1),
            o.cc_errors,
            o.pts_backwards,
            o.duplicate_pts
        );
    }
    println!("\nrouter log lines read: {}", log.lines);
}
