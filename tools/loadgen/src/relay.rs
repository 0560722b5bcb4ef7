//! The relays under test, as child processes: `switchyard run` with a
//! generated configuration, or one `srt-live-transmit` per stream.
//!
//! Every child is owned by a [`Children`] guard, which stops them (SIGTERM,
//! then SIGKILL after a grace period) when dropped: at the end of a phase,
//! on an error, and on Ctrl-C (the phase's future is dropped). Where
//! `setpriv` exists the children also get `PDEATHSIG=KILL`, so even a
//! SIGKILLed loadgen leaves nothing behind. (The death signal follows the
//! *thread* that spawned the child: children are spawned from the main
//! thread, which lives as long as the process.)

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Children still running this long after SIGTERM are killed.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// Child processes stopped when dropped.
#[derive(Debug, Default)]
pub struct Children {
    children: Vec<(String, Child)>,
}

impl Children {
    /// Spawns `program args…` with stdout and stderr appended to `log`.
    pub fn spawn(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> anyhow::Result<u32> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = if has_setpriv() {
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id();
        self.children.push((name.to_string(), child));
        Ok(pid)
    }

    /// A child that already exited: its name and status.
    pub fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(name, child)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| format!("{name} exited early ({status})"))
        })
    }

    /// SIGTERM to every child, SIGKILL to those still running after
    /// [`TERM_GRACE`]; reaps them all.
    pub fn stop(&mut self) {
        for (_, child) in &mut self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        for (name, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("loadgen: {name} ignored SIGTERM for {TERM_GRACE:?}: killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        self.children.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.stop();
    }
}

fn has_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPU time (user + system) of a process so far, from `/proc/PID/stat`
/// (fields 14 and 15, in clock ticks; proc(5)).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        // `rest` starts at field 3.
        let f = fields.get(n - 3).context("short /proc/PID/stat")?;
        Ok(f.parse()?)
    };
    let ticks = field(14)? + field(15)?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// Sum of [`cpu_seconds`] over `pids`.
pub fn cpu_seconds_sum(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

/// A loopback UDP port free right now (bound, then released: another
/// process could take it in between, which the relay would report as a
/// bind error).
pub fn free_port() -> anyhow::Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(socket.local_addr()?.port())
}

/// What a switchyard phase routes.
#[derive(Debug)]
pub struct SwitchyardPlan {
    pub srt_port: u16,
    pub srt_latency_ms: u64,
    /// SRT streams (`loadgen/srtN`), each to a UDP output.
    pub srt_outputs: Vec<SocketAddr>,
    /// UDP streams (`loadgen/udpN`): input port and UDP output.
    pub udp_routes: Vec<(u16, SocketAddr)>,
}

pub fn srt_stream_id(index: usize) -> String {
    format!("loadgen/srt{index}")
}

impl SwitchyardPlan {
    pub fn to_toml(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "# Generated by loadgen: one stream per publisher.");
        let _ = writeln!(
            t,
            "[api]\nlisten = \"127.0.0.1:{}\"\n",
            self.srt_port.wrapping_add(1)
        );
        let _ = writeln!(
            t,
            "[srt]\nlisten = \"127.0.0.1:{}\"\nlatency_ms = {}\naccept_any_stream = false\nmax_connections = 1024\n",
            self.srt_port, self.srt_latency_ms
        );
        // A relay load: no encoders (the stamped packets are not video an
        // encoder would keep).
        let _ = writeln!(t, "[defaults]\nprofile = \"passthrough\"\n");
        for (i, out) in self.srt_outputs.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[stream]]\nid = \"{}\"\n  [[stream.output]]\n  kind = \"udp\"\n  address = \"{out}\"\n",
                srt_stream_id(i)
            );
        }
        for (i, (port, out)) in self.udp_routes.iter().enumerate() {
            let _ = writeln!(
                t,
                "[[stream]]\nid = \"loadgen/udp{i}\"\n  [[stream.input]]\n  kind = \"udp\"\n  listen = \"127.0.0.1:{port}\"\n  [[stream.output]]\n  kind = \"udp\"\n  address = \"{out}\"\n"
            );
        }
        t
    }
}

/// Starts `switchyard run --config DIR/switchyard.toml` and waits until it
/// logs that it runs (every socket bound).
pub async fn start_switchyard(
    children: &mut Children,
    bin: &Path,
    plan: &SwitchyardPlan,
    dir: &Path,
) -> anyhow::Result<u32> {
    let config = dir.join("switchyard.toml");
    std::fs::write(&config, plan.to_toml())
        .with_context(|| format!("writing {}", config.display()))?;
    let log = dir.join("switchyard.log");
    let args = vec![
        "run".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    let pid = children.spawn("switchyard", bin, &args, &log)?;
    wait_for_log(
        children,
        &log,
        "switchyard running",
        Duration::from_secs(10),
    )
    .await?;
    Ok(pid)
}

async fn wait_for_log(
    children: &mut Children,
    log: &Path,
    needle: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return Ok(());
        }
        if let Some(exited) = children.exited() {
            bail!("{exited}; its log {}:\n{}", log.display(), tail(&text, 20));
        }
        if Instant::now() >= deadline {
            bail!("no \"{needle}\" in {} after {limit:?}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Starts one `srt-live-transmit` listener per stream, relaying SRT on
/// `ports[i]` to UDP `outputs[i]`.
pub fn start_srt_live_transmit(
    children: &mut Children,
    bin: &Path,
    ports: &[u16],
    outputs: &[SocketAddr],
    latency_ms: u64,
    dir: &Path,
) -> anyhow::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for (i, (port, out)) in ports.iter().zip(outputs).enumerate() {
        let args = vec![
            format!("srt://127.0.0.1:{port}?mode=listener&latency={latency_ms}"),
            format!("udp://{out}"),
            "-loglevel:error".to_string(),
        ];
        let log: PathBuf = dir.join(format!("srt-live-transmit-{i}.log"));
        pids.push(children.spawn(&format!("srt-live-transmit #{i}"), bin, &args, &log)?);
    }
    Ok(pids)
}
