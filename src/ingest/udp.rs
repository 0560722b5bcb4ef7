//! The UDP and RTP ingests: one socket per `[[stream.input]]`, bound to
//! its stream (issue 3, point 3), and read by that stream's task itself.
//!
//! Plain UDP datagrams (1 to 7 TS packets) go to the stream as they are,
//! zero copy. RTP datagrams go through the sans-IO [`TsReceiver`]
//! (sequence order, reordering window, loss, duplicates, SSRC change) and
//! their payloads, slices of the datagrams, go to the stream.
//!
//! There is no ingest task: a UDP input belongs to one configured stream,
//! so the stream task waits on the socket next to its mailbox and takes the
//! datagrams in batches when it is readable. Each datagram then crosses no
//! task boundary between the socket and the stream's outputs, which is
//! most of what a relay adds to a packet's latency under load (measured
//! with `tools/loadgen`).

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::app::stream::InputSource;
use crate::config::{InputConfig, InputKind, InputRole, StreamId};
use crate::ingest::socket::{self, BatchReceiver};
use crate::ingest::srt::listener::log_recv_buffer;
use crate::rtp::{ReceiverConfig, TsReceiver};

/// Asked of the kernel for every UDP/RTP ingest socket: the size measured to
/// hold 100 Mbit/s bursts (DESIGN.md).
const RECV_BUFFER: usize = 4 << 20;

/// Datagrams taken from the socket per wake-up, at most, so that one busy
/// input cannot hold its stream task forever.
const RECV_BATCH: usize = 256;

/// RTP receiver statistics are logged at most this often, when they changed.
const RTP_STATS_INTERVAL: Duration = Duration::from_secs(10);

/// A bound UDP or RTP input of a stream.
#[derive(Debug)]
pub struct UdpIngest {
    stream: StreamId,
    role: InputRole,
    source: InputSource,
    local: SocketAddr,
    socket: UdpSocket,
    receiver: BatchReceiver,
    batch: Vec<(Bytes, SocketAddr)>,
    rtp: Option<Rtp>,
}

#[derive(Debug)]
struct Rtp {
    receiver: TsReceiver,
    /// The receiver's clock starts here.
    epoch: Instant,
    reported: crate::rtp::ReceiverStats,
    report_at: Instant,
}

impl UdpIngest {
    /// Binds the input's socket (and joins its multicast group). Needs the
    /// tokio runtime (the socket registers with its reactor).
    pub fn bind(stream: StreamId, config: &InputConfig) -> io::Result<UdpIngest> {
        let (socket, granted) =
            socket::bind(config.listen, RECV_BUFFER, config.multicast.as_ref())?;
        log_recv_buffer(config.listen, granted);
        let local = socket.local_addr().unwrap_or(config.listen);
        let (source, rtp) = match config.kind {
            InputKind::Udp => (InputSource::Udp(local), None),
            InputKind::Rtp {
                payload_type,
                reorder_window,
            } => {
                let receiver = TsReceiver::new(ReceiverConfig {
                    payload_type,
                    window: reorder_window,
                    ..ReceiverConfig::default()
                })
                .map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("rtp ingest: {e}"))
                })?;
                let now = Instant::now();
                let rtp = Rtp {
                    reported: receiver.stats(),
                    receiver,
                    epoch: now,
                    report_at: now + RTP_STATS_INTERVAL,
                };
                (InputSource::Rtp(local), Some(rtp))
            }
        };
        Ok(UdpIngest {
            stream,
            role: config.role,
            source,
            local,
            socket,
            receiver: BatchReceiver::new(RECV_BATCH),
            batch: Vec::with_capacity(RECV_BATCH),
            rtp,
        })
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    pub fn role(&self) -> InputRole {
        self.role
    }

    pub fn source(&self) -> InputSource {
        self.source
    }

    /// The bound address (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Ready when datagrams may be waiting (or the socket has an error to
    /// report); then call [`UdpIngest::read`].
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.socket.poll_recv_ready(cx).map(|_| ())
    }

    /// Takes the datagrams waiting on the socket (at most a batch) and hands
    /// their TS payloads to `out`, in order.
    pub fn read(&mut self, out: &mut impl FnMut(Bytes)) {
        if let Err(e) = self.receiver.try_recv(&self.socket, &mut self.batch) {
            // ICMP errors surface on the next receive of a UDP socket;
            // nothing is lost by going on.
            tracing::debug!(stream = %self.stream, "udp receive error: {e}");
        }
        match self.rtp.as_mut() {
            None => {
                for (datagram, _) in self.batch.drain(..) {
                    out(datagram);
                }
            }
            Some(rtp) => {
                let now = rtp.epoch.elapsed();
                for (datagram, _) in self.batch.drain(..) {
                    rtp.receiver.push(now, datagram);
                }
                rtp.release(&self.stream, out);
            }
        }
    }

    /// When [`UdpIngest::handle_timeout`] must be called (RTP reordering,
    /// statistics), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rtp = self.rtp.as_ref()?;
        let release = rtp.receiver.poll_timeout().map(|at| rtp.epoch + at);
        Some(release.map_or(rtp.report_at, |at| at.min(rtp.report_at)))
    }

    pub fn handle_timeout(&mut self, out: &mut impl FnMut(Bytes)) {
        if let Some(rtp) = self.rtp.as_mut() {
            rtp.release(&self.stream, out);
        }
    }

    /// End of input (shutdown): what the RTP reordering window still holds
    /// goes to `out`.
    pub fn flush(&mut self, out: &mut impl FnMut(Bytes)) {
        if let Some(rtp) = self.rtp.as_mut() {
            rtp.receiver.flush();
            rtp.release(&self.stream, out);
        }
    }
}

impl Rtp {
    /// Hands out the payloads due now, and logs the statistics when due.
    fn release(&mut self, stream: &StreamId, out: &mut impl FnMut(Bytes)) {
        let now = self.epoch.elapsed();
        while let Some(payload) = self.receiver.poll(now) {
            out(payload);
        }
        let at = Instant::now();
        if at >= self.report_at {
            self.report_at = at + RTP_STATS_INTERVAL;
            let stats = self.receiver.stats();
            if stats != self.reported {
                tracing::info!(stream = %stream, ?stats, "rtp ingest");
                self.reported = stats;
            }
        }
    }
}

/// Every configured UDP/RTP ingest, bound; a bind failure names the stream
/// and the address.
pub fn bind_all(
    config: &crate::config::Config,
) -> Result<Vec<UdpIngest>, (StreamId, SocketAddr, io::Error)> {
    let mut ingests = Vec::new();
    for stream in &config.streams {
        for input in &stream.inputs {
            let ingest = UdpIngest::bind(stream.id.clone(), input)
                .map_err(|e| (stream.id.clone(), input.listen, e))?;
            ingests.push(ingest);
        }
    }
    Ok(ingests)
}
