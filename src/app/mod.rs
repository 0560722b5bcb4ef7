//! `switchyard run`: wiring the tasks together, and shutting them down.
//!
//! Start-up binds every socket before any task runs, so a port in use or a
//! bad multicast group is a start-up error naming the address, not a
//! running router missing an input. Shutdown (SIGINT, SIGTERM) cancels one
//! token: SRT connections are closed gracefully, stream tasks flush what
//! their RTP inputs still hold and their buffers to their outputs, and
//! outputs drain, flush and close (files closed, SRT shutdown sent) before [`Router::shutdown`]
//! returns.

pub mod encoding;
pub mod metrics;
pub mod pool;
pub mod registry;
pub mod stream;
pub mod timer;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, StreamId};
use crate::ingest::srt::listener::{SrtListener, SrtMetrics};
use crate::ingest::udp;

use registry::Registry;

/// Player batches in flight to the SRT port task.
const PLAYER_MAILBOX: usize = 1024;

/// Why the router did not start. Each reads as a sentence a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the SRT port {addr} ([srt] listen): {source}")]
    SrtBind { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Ffmpeg(#[from] crate::encoder::FfmpegMissing),
    #[error("cannot bind input {addr} of stream {stream:?} ([[stream.input]] listen): {source}")]
    InputBind {
        stream: StreamId,
        addr: SocketAddr,
        source: io::Error,
    },
}

/// A running router.
#[derive(Debug)]
pub struct Router {
    shutdown: CancellationToken,
    tasks: TaskTracker,
    registry: Registry,
    srt_addr: SocketAddr,
    srt_metrics: Arc<SrtMetrics>,
    input_addrs: Vec<(StreamId, SocketAddr)>,
}

impl Router {
    /// Binds every socket and starts every task. Must run inside a tokio
    /// runtime.
    pub async fn start(config: Arc<Config>) -> Result<Router, StartError> {
        check_encoders(&config)?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (players_tx, players_rx) = mpsc::channel(PLAYER_MAILBOX);
        let registry = Registry::new(config.clone(), players_tx, shutdown.clone(), tasks.clone());
        let srt_metrics = Arc::new(SrtMetrics::default());
        let srt = SrtListener::bind(config.clone(), registry.clone(), srt_metrics.clone())
            .map_err(|source| StartError::SrtBind {
                addr: config.srt.listen,
                source,
            })?;
        let srt_addr = srt.local_addr().unwrap_or(config.srt.listen);
        let ingests =
            udp::bind_all(&config).map_err(|(stream, addr, source)| StartError::InputBind {
                stream,
                addr,
                source,
            })?;
        let input_addrs = ingests
            .iter()
            .map(|i| (i.stream().clone(), i.local_addr()))
            .collect();
        registry.add_ingests(ingests);
        // Configured streams run from the start, so their outputs are up
        // before the first publisher.
        for stream in &config.streams {
            registry.get_or_start(&stream.id);
        }
        // Spares first: a stream's first encoder then needs no spawn.
        registry.pool().refill();
        tasks.spawn(watch_spares(registry.clone(), shutdown.clone()));
        tasks.spawn(srt.run(players_rx, shutdown.clone()));
        tracing::info!(
            srt = %srt_addr, api = %config.api.listen, streams = config.streams.len(),
            "switchyard running"
        );
        Ok(Router {
            shutdown,
            tasks,
            registry,
            srt_addr,
            srt_metrics,
            input_addrs,
        })
    }

    /// The SRT port's actual address (useful with port 0).
    pub fn srt_addr(&self) -> SocketAddr {
        self.srt_addr
    }

    /// The actual addresses of the UDP/RTP inputs, in configuration order.
    pub fn input_addrs(&self) -> &[(StreamId, SocketAddr)] {
        &self.input_addrs
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn srt_metrics(&self) -> &Arc<SrtMetrics> {
        &self.srt_metrics
    }

    /// Stops everything and waits for every task to finish, at most
    /// `grace`. Returns false if some task had to be abandoned.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.tasks.close();
        let finished = tokio::time::timeout(grace, self.tasks.wait()).await.is_ok();
        for spare in self.registry.pool().clear() {
            spare.stop(Duration::from_millis(500)).await;
        }
        finished
    }
}

/// Every profile a stream may use (the configured streams', and the
/// defaults' for streams that arrive by streamid) has its program: a
/// missing ffmpeg is a start-up error that says how to install it, not a
/// stream that fails later.
fn check_encoders(config: &Config) -> Result<(), StartError> {
    let layout = crate::encoder::StreamLayout::default();
    let names = config
        .streams
        .iter()
        .map(|s| s.settings.profile.as_str())
        .chain(
            config
                .srt
                .accept_any_stream
                .then_some(config.defaults.profile.as_str()),
        );
    for name in names {
        if let Some(spec) = config
            .profile(name)
            .and_then(|p| crate::encoder::process::EncoderSpec::from_profile(p, &layout))
        {
            spec.check_program()?;
        }
    }
    Ok(())
}

/// Sleeps until `deadline`, or forever when there is none: the timer arm
/// of the tasks' `select!` loops over a sans-IO core's `poll_timeout`.
pub async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Replaces spares that died while waiting.
async fn watch_spares(registry: Registry, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => registry.pool().check_spares(),
        }
    }
}
