//! The UDP and RTP ingest tasks: one socket per `[[stream.input]]`, bound
//! to its stream (issue 3, point 3).
//!
//! Plain UDP datagrams (1 to 7 TS packets) go to the stream as they are,
//! zero copy. RTP datagrams go through the sans-IO [`TsReceiver`]
//! (sequence order, reordering window, loss, duplicates, SSRC change) and
//! their payloads, slices of the datagrams, go to the stream.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::registry::{Registry, StreamHandle};
use crate::app::sleep_until;
use crate::app::stream::{InputSource, StreamMsg};
use crate::config::{InputConfig, InputKind, InputRole, StreamId};
use crate::ingest::socket::{self, BatchReceiver};
use crate::ingest::srt::listener::log_recv_buffer;
use crate::rtp::{ReceiverConfig, TsReceiver};

/// Asked of the kernel for every UDP/RTP ingest socket: the size measured to
/// hold 100 Mbit/s bursts (DESIGN.md).
const RECV_BUFFER: usize = 4 << 20;

/// Datagrams taken from the socket per wake-up, at most.
const RECV_BATCH: usize = 256;

/// A bound UDP or RTP ingest.
#[derive(Debug)]
pub struct UdpIngest {
    stream: StreamId,
    config: InputConfig,
    socket: UdpSocket,
    registry: Registry,
}

impl UdpIngest {
    /// Binds the input's socket (and joins its multicast group).
    pub fn bind(
        stream: StreamId,
        config: InputConfig,
        registry: Registry,
    ) -> io::Result<UdpIngest> {
        let (socket, granted) =
            socket::bind(config.listen, RECV_BUFFER, config.multicast.as_ref())?;
        log_recv_buffer(config.listen, granted);
        Ok(UdpIngest {
            stream,
            config,
            socket,
            registry,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let role = self.config.role;
        let local = self.local_addr().unwrap_or(self.config.listen);
        let source = match self.config.kind {
            InputKind::Udp => InputSource::Udp(local),
            InputKind::Rtp { .. } => InputSource::Rtp(local),
        };
        let Some(handle) = self.registry.get_or_start(&self.stream) else {
            return;
        };
        let mut sink = Sink {
            stream: self.stream.clone(),
            registry: self.registry.clone(),
            handle,
            role,
        };
        sink.handle.control(StreamMsg::InputUp { role, source });
        tracing::info!(stream = %self.stream, ?role, %source, "ingest listening");
        match self.config.kind {
            InputKind::Udp => udp_loop(&self.socket, &mut sink, &shutdown).await,
            InputKind::Rtp {
                payload_type,
                reorder_window,
            } => {
                let config = ReceiverConfig {
                    payload_type,
                    window: reorder_window,
                    ..ReceiverConfig::default()
                };
                match TsReceiver::new(config) {
                    Ok(receiver) => rtp_loop(&self.socket, receiver, &mut sink, &shutdown).await,
                    Err(e) => tracing::error!(stream = %self.stream, "rtp ingest not started: {e}"),
                }
            }
        }
        sink.handle.control(StreamMsg::InputDown { role, source });
    }
}

/// The stream end of an ingest.
struct Sink {
    stream: StreamId,
    registry: Registry,
    handle: StreamHandle,
    role: InputRole,
}

impl Sink {
    fn data(&mut self, data: Bytes) {
        let role = self.role;
        match self.handle.mailbox.try_send(StreamMsg::Data { role, data }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.handle.metrics.count_mailbox_drop(),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // Only at shutdown: configured streams never idle out.
                if let Some(handle) = self.registry.get_or_start(&self.stream) {
                    self.handle = handle;
                }
            }
        }
    }
}

async fn udp_loop(socket: &UdpSocket, sink: &mut Sink, shutdown: &CancellationToken) {
    let mut receiver = BatchReceiver::new(RECV_BATCH);
    let mut batch = Vec::with_capacity(RECV_BATCH);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            received = receiver.recv(socket, &mut batch) => {
                if let Err(e) = received {
                    tracing::debug!(stream = %sink.stream, "udp receive error: {e}");
                }
                for (datagram, _) in batch.drain(..) {
                    sink.data(datagram);
                }
            }
        }
    }
}

async fn rtp_loop(
    socket: &UdpSocket,
    mut rtp: TsReceiver,
    sink: &mut Sink,
    shutdown: &CancellationToken,
) {
    let epoch = Instant::now();
    let mut receiver = BatchReceiver::new(RECV_BATCH);
    let mut batch = Vec::with_capacity(RECV_BATCH);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
    let mut reported = rtp.stats();
    loop {
        let deadline = rtp.poll_timeout().map(|at| epoch + at);
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                rtp.flush();
                while let Some(payload) = rtp.poll(epoch.elapsed()) {
                    sink.data(payload);
                }
                return;
            }
            received = receiver.recv(socket, &mut batch) => {
                if let Err(e) = received {
                    tracing::debug!(stream = %sink.stream, "rtp receive error: {e}");
                }
                let now = epoch.elapsed();
                for (datagram, _) in batch.drain(..) {
                    rtp.push(now, datagram);
                }
                while let Some(payload) = rtp.poll(now) {
                    sink.data(payload);
                }
            }
            () = sleep_until(deadline) => {
                let now = epoch.elapsed();
                while let Some(payload) = rtp.poll(now) {
                    sink.data(payload);
                }
            }
            _ = stats_tick.tick() => {
                let stats = rtp.stats();
                if stats != reported {
                    tracing::info!(stream = %sink.stream, ?stats, "rtp ingest");
                    reported = stats;
                }
            }
        }
    }
}

/// Every configured UDP/RTP ingest, bound; a bind failure names the stream
/// and the address.
pub fn bind_all(
    config: &crate::config::Config,
    registry: &Registry,
) -> Result<Vec<UdpIngest>, (StreamId, SocketAddr, io::Error)> {
    let mut ingests = Vec::new();
    for stream in &config.streams {
        for input in &stream.inputs {
            let ingest = UdpIngest::bind(stream.id.clone(), input.clone(), registry.clone())
                .map_err(|e| (stream.id.clone(), input.listen, e))?;
            ingests.push(ingest);
        }
    }
    Ok(ingests)
}

impl UdpIngest {
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }
}

impl UdpIngest {
    pub fn config_listen(&self) -> SocketAddr {
        self.config.listen
    }
}
