//! The running streams, by id: configured streams from start-up, streams
//! of `accept_any_stream` publishers and players created on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, OutputKind, Standby, StreamConfig, StreamId};
use crate::encoder::StreamLayout;
use crate::encoder::process::{EncoderOptions, EncoderSpec};
use crate::failover::{GiveUp, SupervisorSettings};
use crate::ingest::udp::UdpIngest;
use crate::output::udp::DirectUdp;
use crate::output::{OutputStats, UdpTarget};
use crate::placement::RefusalPolicy;

use super::encoding::EncodingSetup;
use super::metrics::StreamMetrics;
use super::pool::EncoderPool;
use super::stream::{OutputEnd, PlayerBatch, StreamMsg, StreamTask};

/// Messages queued for one stream task at most: ~5 MB of datagrams. A
/// stream task never waits on anything, so a full mailbox means the
/// machine is overloaded; senders drop and count.
pub const MAILBOX_CAPACITY: usize = 4096;

/// A running stream, as the SRT port task and the API see it.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    pub mailbox: mpsc::Sender<StreamMsg>,
    pub metrics: Arc<StreamMetrics>,
    /// The configured outputs: name and counters.
    pub outputs: Arc<Vec<(String, Arc<OutputStats>)>>,
}

impl StreamHandle {
    /// Delivers a control message (connect, disconnect, players) even when
    /// the mailbox is momentarily full: these are rare and must not be
    /// lost, and the caller must not wait.
    pub fn control(&self, msg: StreamMsg) {
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.mailbox.try_send(msg) {
            let mailbox = self.mailbox.clone();
            tokio::spawn(async move {
                let _ = mailbox.send(msg).await;
            });
        }
    }
}

/// Shared by the SRT port task and the stream tasks.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    streams: HashMap<StreamId, StreamHandle>,
    players: mpsc::Sender<PlayerBatch>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    pool: Arc<EncoderPool>,
    /// Bound UDP/RTP inputs, by stream, until their stream task takes them.
    ingests: HashMap<StreamId, Vec<UdpIngest>>,
}

impl Registry {
    pub fn new(
        config: Arc<Config>,
        players: mpsc::Sender<PlayerBatch>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Registry {
        let pool = Arc::new(encoder_pool(&config));
        Registry {
            inner: Arc::new(Mutex::new(Inner {
                config,
                streams: HashMap::new(),
                players,
                shutdown,
                tasks,
                pool,
                ingests: HashMap::new(),
            })),
        }
    }

    /// Hands bound UDP/RTP inputs to their streams' tasks (at their start:
    /// call before the streams start).
    pub fn add_ingests(&self, ingests: Vec<UdpIngest>) {
        let mut inner = self.lock();
        for ingest in ingests {
            inner
                .ingests
                .entry(ingest.stream().clone())
                .or_default()
                .push(ingest);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves a consistent map (every
        // critical section is a single insert or remove).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream's handle, starting its task if it is not running (or its
    /// task has just ended). `None` after shutdown began.
    pub fn get_or_start(&self, id: &StreamId) -> Option<StreamHandle> {
        let mut inner = self.lock();
        if let Some(handle) = inner.streams.get(id)
            && !handle.mailbox.is_closed()
        {
            return Some(handle.clone());
        }
        if inner.shutdown.is_cancelled() {
            return None;
        }
        let (config, configured) = match inner.config.stream(id.as_str()) {
            Some(stream) => (Arc::new(stream.clone()), true),
            None => (
                Arc::new(StreamConfig {
                    id: id.clone(),
                    passphrase: None,
                    users: None,
                    settings: inner.config.defaults.clone(),
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                }),
                false,
            ),
        };
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
        let mut handle_outputs = Vec::new();
        let outputs_done = CancellationToken::new();
        let mut outputs = Vec::new();
        for (at, output) in config.outputs.iter().enumerate() {
            let stats = Arc::new(OutputStats::default());
            let name = format!("output[{at}] {}", output.describe());
            let end = match &output.kind {
                OutputKind::Udp {
                    address,
                    ttl,
                    multicast_interface,
                } => {
                    let target = UdpTarget {
                        address: *address,
                        ttl: *ttl,
                        multicast_interface: *multicast_interface,
                    };
                    OutputEnd::Direct(Box::new(DirectUdp::new(
                        config.id.clone(),
                        target,
                        output.reconnect,
                        stats.clone(),
                    )))
                }
                OutputKind::File { .. } | OutputKind::Srt(_) => {
                    let (sender, feed) = crate::output::feed();
                    inner.tasks.spawn(crate::output::run(
                        config.id.clone(),
                        output.clone(),
                        feed,
                        outputs_done.clone(),
                        stats.clone(),
                    ));
                    OutputEnd::Task(sender)
                }
            };
            handle_outputs.push((name.clone(), stats));
            outputs.push((name, end));
        }
        let encoding = encoding_setup(&inner, &config);
        let metrics = Arc::new(StreamMetrics::default());
        let ingests = inner.ingests.remove(id).unwrap_or_default();
        let task = StreamTask {
            ingests,
            encoding,
            config,
            configured,
            outputs,
            outputs_done,
            mailbox: rx,
            players: inner.players.clone(),
            registry: self.clone(),
            metrics: metrics.clone(),
            shutdown: inner.shutdown.clone(),
        };
        let handle = StreamHandle {
            mailbox: tx,
            metrics,
            outputs: Arc::new(handle_outputs),
        };
        inner.tasks.spawn(task.run());
        inner.streams.insert(id.clone(), handle.clone());
        Some(handle)
    }

    /// Removes an idle stream, unless a message reached its mailbox while
    /// it decided (then it keeps running). The caller drops the mailbox
    /// right after, so a sender that cloned the handle before sees a closed
    /// channel and starts the stream again.
    pub fn remove_if_idle(&self, id: &StreamId, mailbox: &mpsc::Receiver<StreamMsg>) -> bool {
        let mut inner = self.lock();
        if !mailbox.is_empty() {
            return false;
        }
        inner.streams.remove(id);
        true
    }

    pub fn remove(&self, id: &StreamId) {
        let mut inner = self.lock();
        if inner
            .streams
            .get(id)
            .is_some_and(|handle| handle.mailbox.is_closed() || inner.shutdown.is_cancelled())
        {
            inner.streams.remove(id);
        }
    }

    /// The router's encoder pool.
    pub fn pool(&self) -> Arc<EncoderPool> {
        self.lock().pool.clone()
    }

    /// The running streams, for the API and metrics.
    pub fn snapshot(&self) -> Vec<(StreamId, StreamHandle)> {
        let inner = self.lock();
        let mut streams: Vec<_> = inner
            .streams
            .iter()
            .map(|(id, handle)| (id.clone(), handle.clone()))
            .collect();
        streams.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        streams
    }
}

/// How a stream is encoded: `None` for the passthrough profile.
fn encoding_setup(inner: &Inner, stream: &StreamConfig) -> Option<EncodingSetup> {
    let config = &inner.config;
    let profile = config.stream_profile(stream)?;
    let spec = EncoderSpec::from_profile(profile, &StreamLayout::default())?;
    let settings = &stream.settings;
    Some(EncodingSetup {
        spec,
        options: EncoderOptions {
            health: config.encoder.health(),
            ..EncoderOptions::default()
        },
        supervisor: SupervisorSettings {
            degraded_grace: config.encoder.degraded_grace,
            hot_standby: settings.standby == Standby::Hot,
            give_up: match config.encoder.on_no_capacity {
                RefusalPolicy::Passthrough => GiveUp::Passthrough,
                RefusalPolicy::Reject => GiveUp::Stop,
            },
            ..SupervisorSettings::default()
        },
        mode: settings.failover_mode,
        pool: inner.pool.clone(),
        cost: crate::placement::estimated_cost(profile),
        tasks: inner.tasks.clone(),
    })
}

/// The pool, with spares of the default profile when some stream can use
/// it (a configured stream, or any streamid with `[defaults]`).
fn encoder_pool(config: &Config) -> EncoderPool {
    let default = config.encoder.default_profile.as_str();
    let used = config.streams.iter().any(|s| s.settings.profile == default)
        || (config.srt.accept_any_stream && config.defaults.profile == default);
    let spare_spec = config
        .profile(default)
        .filter(|_| used)
        .and_then(|p| EncoderSpec::from_profile(p, &StreamLayout::default()));
    EncoderPool::new(
        config.encoder.placement(),
        spare_spec,
        EncoderOptions {
            health: config.encoder.health(),
            ..EncoderOptions::default()
        },
    )
}
