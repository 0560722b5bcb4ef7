//! The per-stream task: the stream's inputs in, its ring buffer, and the
//! fan-out to outputs and players.
//!
//! It owns the stream's [`StreamBuffer`] and input selection alone, so the
//! data path takes no lock. It never awaits anything but its own mailbox,
//! its UDP/RTP input sockets and timers: outputs and players get batches
//! with `try_send` (UDP outputs: a non-blocking send from this task), and
//! what they cannot take yet stays in their consumer queue, which skips
//! ahead a GOP when they fall too far behind (`ring::queue`).
//!
//! So a datagram from a UDP input to a UDP output crosses no task boundary,
//! and one from an SRT publisher crosses one (the SRT port task's mailbox
//! send): each hop is a wake-up that waits its turn on a busy machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{InputRole, StreamConfig, StreamId};
use crate::failover::{GiveUp, InputEvent, InputSettings, InputSwitch};
use crate::ingest::srt::ConnId;
use crate::ingest::udp::UdpIngest;
use crate::output::udp::{Delivery, DirectUdp};
use crate::output::{Batch, FeedSender, Offer};
use crate::ring::{ConsumerId, QueueLimits, RingLimits, StreamBuffer};

use super::encoding::{ENCODER_MAILBOX, EncoderMsg, Encoding, EncodingSetup, GivenUp};
use super::metrics::{StreamMetrics, SwitchRecord};
use super::registry::Registry;
use super::sleep_until;

/// Packets handed to an output or player per batch, at most: 12 KB.
const BATCH_PACKETS: usize = 64;

/// A stream not in the configuration, with no input and no player, is
/// dropped after this long (its publisher may be reconnecting).
const IDLE_STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// How often outputs that were full are offered their packets again.
const RETRY_INTERVAL: Duration = Duration::from_millis(5);

/// Where an input's datagrams come from, for logs and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputSource {
    Srt(ConnId),
    Udp(SocketAddr),
    Rtp(SocketAddr),
}

impl std::fmt::Display for InputSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSource::Srt(conn) => write!(f, "srt connection {}", conn.0),
            InputSource::Udp(addr) => write!(f, "udp {addr}"),
            InputSource::Rtp(addr) => write!(f, "rtp {addr}"),
        }
    }
}

/// A message to a stream task.
#[derive(Debug)]
pub enum StreamMsg {
    /// One datagram's worth of TS packets from an input.
    Data {
        role: InputRole,
        data: Bytes,
    },
    /// An input connected (SRT publishers; UDP and RTP inputs are up from
    /// the start and known lost by their silence).
    InputUp {
        role: InputRole,
        source: InputSource,
    },
    /// An input disconnected. Ignored unless `source` is the stream's
    /// current input of that role (a takeover replaces the main first).
    InputDown {
        role: InputRole,
        source: InputSource,
    },
    /// An SRT player (`m=request`) to feed through the SRT port task.
    AttachPlayer {
        conn: ConnId,
    },
    DetachPlayer {
        conn: ConnId,
    },
}

/// How the stream task reaches one configured output.
#[derive(Debug)]
pub enum OutputEnd {
    /// The output's own task, through its feed (SRT, file).
    Task(FeedSender),
    /// Sent from the stream task itself (UDP): one task hop fewer.
    Direct(Box<DirectUdp>),
}

/// Packets for one SRT player, to the SRT port task.
#[derive(Debug)]
pub struct PlayerBatch {
    pub conn: ConnId,
    pub packets: Batch,
}

/// One consumer of the stream: an output (its task, or sent directly) or an
/// SRT player.
#[derive(Debug)]
struct Slot {
    consumer: ConsumerId,
    target: Target,
    /// A batch the target had no room for.
    pending: Option<Batch>,
}

#[derive(Debug)]
enum Target {
    Output { name: String, sender: FeedSender },
    Direct { name: String, out: Box<DirectUdp> },
    Player { conn: ConnId },
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Output { name, .. } | Target::Direct { name, .. } => name,
            Target::Player { .. } => "player",
        }
    }
}

/// Everything a stream task is started with.
#[derive(Debug)]
pub struct StreamTask {
    pub config: Arc<StreamConfig>,
    /// The stream's UDP/RTP inputs, read by this task.
    pub ingests: Vec<UdpIngest>,
    /// How the stream is encoded; `None`: passthrough.
    pub encoding: Option<EncodingSetup>,
    /// Listed in the configuration (kept when idle).
    pub configured: bool,
    /// The configured outputs, by name.
    pub outputs: Vec<(String, OutputEnd)>,
    /// Cancelled when the task ends, after its last packets went to the
    /// feeds: the outputs then drain their feed, flush and close.
    pub outputs_done: CancellationToken,
    pub mailbox: mpsc::Receiver<StreamMsg>,
    pub players: mpsc::Sender<PlayerBatch>,
    pub registry: Registry,
    pub metrics: Arc<StreamMetrics>,
    pub shutdown: CancellationToken,
}

struct Running {
    id: StreamId,
    ingests: Vec<UdpIngest>,
    /// The input ring: the selected input, spliced.
    buffer: StreamBuffer,
    /// The encoders and the published ring; `None`: the input ring is
    /// published as it is.
    encoding: Option<Encoding>,
    /// The encoding gave up with `on_no_capacity = "reject"`: nothing is
    /// published any more.
    stopped: bool,
    switch: InputSwitch,
    limits: QueueLimits,
    slots: Vec<Slot>,
    inputs: [Option<InputSource>; 2],
    players: mpsc::Sender<PlayerBatch>,
    metrics: Arc<StreamMetrics>,
    spliced: Vec<Bytes>,
    last_activity: Instant,
    /// The ring had no IDR for longer than it holds (logged once per
    /// episode).
    starved: bool,
}

fn role_index(role: InputRole) -> usize {
    match role {
        InputRole::Main => 0,
        InputRole::Backup => 1,
    }
}

impl StreamTask {
    /// Runs until shutdown, or until an unconfigured stream has been idle
    /// for [`IDLE_STREAM_TIMEOUT`].
    pub async fn run(self) {
        let StreamTask {
            config,
            ingests,
            encoding,
            configured,
            outputs,
            outputs_done,
            mut mailbox,
            players,
            registry,
            metrics,
            shutdown,
        } = self;
        let settings = &config.settings;
        let ring = RingLimits {
            budget: settings.buffer.as_usize(),
            hard_cap: settings.buffer_hard_cap.as_usize(),
        };
        let buffer = match StreamBuffer::new(crate::ring::StreamConfig {
            ring,
            ..Default::default()
        }) {
            Ok(buffer) => buffer,
            Err(e) => {
                tracing::error!(stream = %config.id, "cannot create the stream buffer: {e}");
                return;
            }
        };
        let queue = settings.consumer_queue.as_usize();
        let (encoder_tx, mut encoder_rx) = mpsc::channel::<EncoderMsg>(ENCODER_MAILBOX);
        let mut refused = false;
        let encoding = encoding.and_then(|setup| match setup.pool.admit(setup.cost) {
            Ok(()) => Encoding::new(config.id.clone(), setup, ring, encoder_tx, metrics.clone()),
            Err(reason) => {
                refused = setup.supervisor.give_up == GiveUp::Stop;
                tracing::warn!(
                    stream = %config.id,
                    "stream refused an encoder: {reason}; it {}",
                    if refused { "is not published (on_no_capacity = \"reject\")" }
                    else { "runs unencoded (on_no_capacity = \"passthrough\")" }
                );
                None
            }
        });
        let mut stream = Running {
            id: config.id.clone(),
            ingests,
            buffer,
            encoding,
            stopped: refused,
            switch: InputSwitch::new(InputSettings::from_stream(settings)),
            limits: QueueLimits {
                capacity: queue,
                hard_limit: queue.saturating_mul(2),
            },
            slots: Vec::new(),
            inputs: [None, None],
            players,
            metrics,
            spliced: Vec::new(),
            last_activity: Instant::now(),
            starved: false,
        };
        for (name, end) in outputs {
            stream.attach_output(name, end);
        }
        let inputs: Vec<_> = stream
            .ingests
            .iter()
            .map(|i| (i.role(), i.source()))
            .collect();
        for (role, source) in inputs {
            tracing::info!(stream = %stream.id, ?role, %source, "ingest listening");
            stream.handle(StreamMsg::InputUp { role, source });
        }
        tracing::info!(
            stream = %stream.id, configured,
            profile = %config.settings.profile,
            encoded = stream.encoding.is_some(),
            "stream started"
        );
        stream.apply_encoding();
        let mut retry = tokio::time::interval(RETRY_INTERVAL);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle_check = tokio::time::interval(Duration::from_secs(1));
        loop {
            let switch_deadline = stream.switch.poll_timeout().map(Instant::from_std);
            let encoding_deadline = stream.encoding.as_ref().and_then(Encoding::poll_timeout);
            let waiting = stream.slots.iter().any(|s| s.pending.is_some());
            let ingest_deadline = stream
                .ingests
                .iter()
                .filter_map(UdpIngest::poll_timeout)
                .min();
            let has_ingests = !stream.ingests.is_empty();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                msg = mailbox.recv() => {
                    let Some(msg) = msg else { break };
                    stream.handle(msg);
                    // Take whatever else is queued before pumping, so that
                    // a busy stream hands out larger batches.
                    for _ in 0..256 {
                        match mailbox.try_recv() {
                            Ok(msg) => stream.handle(msg),
                            Err(_) => break,
                        }
                    }
                    stream.pump();
                }
                () = readable(&stream.ingests), if has_ingests => {
                    stream.read_ingests();
                    stream.pump();
                }
                () = sleep_until(ingest_deadline) => {
                    stream.ingest_timeouts();
                    stream.pump();
                }
                () = sleep_until(switch_deadline) => {
                    stream.timeout();
                    stream.pump();
                }
                Some(msg) = encoder_rx.recv() => {
                    stream.encoder_msg(msg);
                    for _ in 0..256 {
                        match encoder_rx.try_recv() {
                            Ok(msg) => stream.encoder_msg(msg),
                            Err(_) => break,
                        }
                    }
                    stream.pump();
                }
                () = sleep_until(encoding_deadline) => {
                    if let Some(encoding) = stream.encoding.as_mut() {
                        encoding.handle_timeout(&mut stream.buffer);
                    }
                    stream.apply_encoding();
                    stream.pump();
                }
                _ = retry.tick(), if waiting => stream.pump(),
                _ = idle_check.tick() => {
                    stream.publish_metrics();
                    if !configured && stream.idle_for() >= IDLE_STREAM_TIMEOUT
                        && registry.remove_if_idle(&stream.id, &mailbox)
                    {
                        stream.stop_encoders();
                        tracing::info!(stream = %stream.id, "idle stream removed");
                        outputs_done.cancel();
                        return;
                    }
                }
            }
        }
        stream.finish();
        drop(stream.slots);
        outputs_done.cancel();
        drop(mailbox);
        registry.remove(&stream.id);
        tracing::info!(stream = %stream.id, "stream stopped");
    }
}

/// Ready when one of `ingests` may have datagrams waiting.
async fn readable(ingests: &[UdpIngest]) {
    std::future::poll_fn(|cx| {
        if ingests.iter().any(|i| i.poll_readable(cx).is_ready()) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

impl Running {
    /// Takes what the UDP/RTP inputs have received, as if it came by mail.
    fn read_ingests(&mut self) {
        let mut ingests = std::mem::take(&mut self.ingests);
        for ingest in &mut ingests {
            let role = ingest.role();
            ingest.read(&mut |data| self.handle(StreamMsg::Data { role, data }));
        }
        self.ingests = ingests;
    }

    fn ingest_timeouts(&mut self) {
        let mut ingests = std::mem::take(&mut self.ingests);
        for ingest in &mut ingests {
            let role = ingest.role();
            ingest.handle_timeout(&mut |data| self.handle(StreamMsg::Data { role, data }));
        }
        self.ingests = ingests;
    }

    fn handle(&mut self, msg: StreamMsg) {
        let now = Instant::now();
        match msg {
            StreamMsg::Data { role, data } => {
                self.last_activity = now;
                self.metrics.add_input(role, data.len());
                self.switch
                    .push(now.into_std(), role, data, &mut self.spliced);
                self.drain_switch();
            }
            StreamMsg::InputUp { role, source } => {
                self.last_activity = now;
                if let Some(old) = self.inputs[role_index(role)].replace(source) {
                    tracing::info!(stream = %self.id, ?role, %old, new = %source, "input replaced");
                } else {
                    tracing::info!(stream = %self.id, ?role, %source, "input connected");
                }
            }
            StreamMsg::InputDown { role, source } => {
                let slot = &mut self.inputs[role_index(role)];
                if *slot == Some(source) {
                    *slot = None;
                    tracing::info!(stream = %self.id, ?role, %source, "input disconnected");
                    self.switch.remove_input(now.into_std(), role);
                    self.drain_switch();
                }
            }
            StreamMsg::AttachPlayer { .. } if self.stopped => {
                tracing::debug!(stream = %self.id, "not published: player ignored");
            }
            StreamMsg::AttachPlayer { conn } => {
                self.last_activity = now;
                let limits = self.limits;
                let consumer = self.published().attach(limits);
                tracing::info!(stream = %self.id, conn = conn.0, "player attached");
                self.slots.push(Slot {
                    consumer,
                    target: Target::Player { conn },
                    pending: None,
                });
            }
            StreamMsg::DetachPlayer { conn } => {
                self.last_activity = now;
                let published = match self.encoding.as_mut() {
                    Some(encoding) => &mut encoding.out,
                    None => &mut self.buffer,
                };
                self.slots.retain(|slot| {
                    if matches!(slot.target, Target::Player { conn: c } if c == conn) {
                        published.detach(slot.consumer);
                        false
                    } else {
                        true
                    }
                });
            }
        }
    }

    fn attach_output(&mut self, name: String, end: OutputEnd) {
        if self.stopped {
            tracing::debug!(stream = %self.id, output = %name, "not published: output ignored");
            return;
        }
        let limits = self.limits;
        let consumer = self.published().attach(limits);
        let target = match end {
            OutputEnd::Task(sender) => Target::Output { name, sender },
            OutputEnd::Direct(mut out) => {
                out.poll(Instant::now());
                Target::Direct { name, out }
            }
        };
        self.slots.push(Slot {
            consumer,
            target,
            pending: None,
        });
    }

    fn timeout(&mut self) {
        self.switch
            .handle_timeout(Instant::now().into_std(), &mut self.spliced);
        self.drain_switch();
    }

    /// The ring outputs and players consume.
    fn published(&mut self) -> &mut StreamBuffer {
        match self.encoding.as_mut() {
            Some(encoding) => &mut encoding.out,
            None => &mut self.buffer,
        }
    }

    fn encoder_msg(&mut self, msg: EncoderMsg) {
        if let Some(encoding) = self.encoding.as_mut() {
            encoding.handle(&mut self.buffer, msg);
        }
        // Carries out what the message decided and feeds the encoders.
        self.apply_encoding();
    }

    /// Starts what the encoder supervisor asked for, and falls back when
    /// it gave up.
    fn apply_encoding(&mut self) {
        let Some(encoding) = self.encoding.as_mut() else {
            return;
        };
        encoding.apply(&mut self.buffer);
        encoding.feed(&mut self.buffer);
        let Some(given_up) = encoding.given_up() else {
            return;
        };
        encoding.stop_all(&mut self.buffer);
        let mut encoding = self.encoding.take();
        match given_up {
            GivenUp::Passthrough => {
                tracing::error!(stream = %self.id, "publishing the input unencoded (passthrough)");
                for slot in &mut self.slots {
                    if let Some(e) = encoding.as_mut() {
                        e.out.detach(slot.consumer);
                    }
                    slot.consumer = self.buffer.attach(self.limits);
                    slot.pending = None;
                }
            }
            GivenUp::StopStream => {
                tracing::error!(stream = %self.id, "stream stopped: no encoder could run it");
                self.stopped = true;
                for slot in self.slots.drain(..) {
                    if let Some(e) = encoding.as_mut() {
                        e.out.detach(slot.consumer);
                    }
                }
            }
        }
    }

    /// Moves the input switch's output into the ring, and logs its events.
    fn drain_switch(&mut self) {
        for packet in self.spliced.drain(..) {
            self.buffer.push(packet);
        }
        if let Some(encoding) = self.encoding.as_mut() {
            encoding.feed(&mut self.buffer);
        }
        while let Some(event) = self.switch.poll_event() {
            match event {
                InputEvent::Switched {
                    from,
                    to,
                    reason,
                    gap,
                    rebased,
                } => {
                    self.metrics.count_switch(SwitchRecord {
                        at: std::time::Instant::now(),
                        from,
                        to,
                        reason,
                        gap,
                        rebased,
                    });
                    let gap_ms = gap.as_secs_f64() * 1000.0;
                    if from.is_none() {
                        tracing::info!(
                            stream = %self.id, to = ?to, ?reason, "output starts from this input"
                        );
                    } else {
                        tracing::warn!(
                            stream = %self.id, from = ?from, to = ?to, ?reason, gap_ms, rebased,
                            "input switched"
                        );
                    }
                }
                InputEvent::InputLost { role, reason } => {
                    tracing::warn!(stream = %self.id, ?role, ?reason, "input lost");
                }
                InputEvent::InputRecovered { role } => {
                    tracing::info!(stream = %self.id, ?role, "input recovered");
                }
            }
        }
    }

    /// Hands each consumer's queued packets to its target, as far as the
    /// targets have room.
    fn pump(&mut self) {
        let mut closed = Vec::new();
        let published = match self.encoding.as_mut() {
            Some(encoding) => &mut encoding.out,
            None => &mut self.buffer,
        };
        let now = Instant::now();
        for (at, slot) in self.slots.iter_mut().enumerate() {
            let rejoin = match &mut slot.target {
                Target::Output { sender, .. } => sender.take_rejoin(),
                Target::Direct { out, .. } => {
                    out.poll(now);
                    out.take_rejoin()
                }
                Target::Player { .. } => false,
            };
            if rejoin {
                tracing::debug!(
                    stream = %self.id, output = %slot.target.name(),
                    "output restarts at a splice point"
                );
                published.detach(slot.consumer);
                slot.consumer = published.attach(self.limits);
                slot.pending = None;
            }
            loop {
                let batch = match slot.pending.take() {
                    Some(batch) => batch,
                    None => {
                        let mut batch = Vec::new();
                        published.take(
                            slot.consumer,
                            BATCH_PACKETS * crate::ts::PACKET_SIZE,
                            &mut batch,
                        );
                        if batch.is_empty() {
                            break;
                        }
                        batch
                    }
                };
                let offer = match &mut slot.target {
                    Target::Output { sender, .. } => sender.offer(batch),
                    Target::Direct { out, .. } => match out.send(batch) {
                        Delivery::Done => Offer::Sent,
                        Delivery::Blocked(rest) => Offer::Full(rest),
                    },
                    Target::Player { conn } => {
                        match self.players.try_send(PlayerBatch {
                            conn: *conn,
                            packets: batch,
                        }) {
                            Ok(()) => Offer::Sent,
                            Err(mpsc::error::TrySendError::Full(b)) => Offer::Full(b.packets),
                            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
                        }
                    }
                };
                match offer {
                    Offer::Sent => {}
                    Offer::Full(batch) => {
                        slot.pending = Some(batch);
                        break;
                    }
                    Offer::Closed => {
                        closed.push(at);
                        break;
                    }
                }
            }
        }
        for at in closed.into_iter().rev() {
            let slot = self.slots.swap_remove(at);
            published.detach(slot.consumer);
            if let Target::Output { name, .. } = slot.target {
                tracing::warn!(stream = %self.id, output = %name, "output task ended");
            }
        }
    }

    fn idle_for(&self) -> Duration {
        if self.inputs.iter().any(Option::is_some)
            || self
                .slots
                .iter()
                .any(|s| matches!(s.target, Target::Player { .. }))
        {
            return Duration::ZERO;
        }
        self.last_activity.elapsed()
    }

    fn publish_metrics(&mut self) {
        self.metrics.set_buffer(&self.buffer.stats());
        let starved = self.buffer.ring().is_starved();
        if starved != self.starved {
            self.starved = starved;
            if starved {
                tracing::warn!(
                    stream = %self.id, buffer = self.buffer.ring().limits().budget,
                    "no IDR for longer than the buffer holds: the stream still flows, and new \
                     consumers start at the next random access point instead of an IDR"
                );
            } else {
                tracing::info!(stream = %self.id, "IDRs again: consumers start at splice points");
            }
        }
    }

    /// Stops the encoders (shutdown).
    fn stop_encoders(&mut self) {
        if let Some(encoding) = self.encoding.as_mut() {
            encoding.flush();
            encoding.stop_all(&mut self.buffer);
        }
    }

    /// Shutdown: flushes what the demux holds and hands the rest of every
    /// queue to its output (outputs drain their feed before closing).
    fn finish(&mut self) {
        let mut ingests = std::mem::take(&mut self.ingests);
        for ingest in &mut ingests {
            let role = ingest.role();
            ingest.flush(&mut |data| self.handle(StreamMsg::Data { role, data }));
        }
        self.buffer.finish();
        self.stop_encoders();
        self.pump();
        self.publish_metrics();
    }
}
