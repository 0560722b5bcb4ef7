//! `kind = "srt"`: push a stream to a remote SRT listener as a caller; the
//! tokio shell around [`SrtCaller`].
//!
//! Each attempt resolves the host again (a DNS change is picked up on the
//! next reconnect), connects a UDP socket to the first address, and runs
//! one [`SrtCaller`] session: handshake within [`HANDSHAKE_TIMEOUT`], then
//! every batch from the stream as SRT messages of up to 7 TS packets
//! (1316 bytes, SRT RFC draft §4.5 "live mode": one message per packet).
//! The session fails on a rejection, a handshake timeout, a peer silent
//! for [`IDLE_TIMEOUT`], an ICMP port unreachable from the listener, or a
//! contained srt-protocol panic; the output then backs off and reconnects.
//!
//! Sending is non-blocking (`try_send`): a datagram the socket cannot take
//! is dropped and SRT retransmits it, so a full socket buffer never stalls
//! the task and its feed.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::backoff::Backoff;
use super::downtime::{Failure, dropping_feed, retry_later, session_started};
use super::srt_connect::{CallerEvent, CallerSettings, SessionError, SrtCaller};
use super::stats::{OutputState, OutputStats};
use super::{Batch, Feed, TS_PACKET_LEN};
use crate::config::{self, AesKeyLength, SrtUrl, StreamId};

/// A handshake not concluded in this time is a failed attempt.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// A connected listener silent for this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a graceful close (flush, shutdown) may take on shutdown.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// TS packets per SRT message.
pub const PACKETS_PER_MESSAGE: usize = 7;

/// Why an attempt or a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SrtOutputError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("cannot set up a UDP socket to {peer}: {source}")]
    Socket { peer: SocketAddr, source: io::Error },
    #[error("{peer}: {source}")]
    Session {
        peer: SocketAddr,
        source: SessionError,
    },
    #[error("{peer}: the listener's port is closed (ICMP port unreachable)")]
    Refused { peer: SocketAddr },
    #[error("{peer}: receiving failed: {source}")]
    Receive { peer: SocketAddr, source: io::Error },
}

/// Pushes `stream` to the SRT listener `url` until `shutdown` fires or the
/// feed closes; then sends what is left in the feed, closes the session
/// gracefully (bounded by [`CLOSE_TIMEOUT`]) and returns.
pub async fn run(
    stream: StreamId,
    url: SrtUrl,
    reconnect: config::Backoff,
    mut feed: Feed,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
) {
    let mut backoff = Backoff::new(reconnect);
    stats.set_state(OutputState::Connecting);
    loop {
        let attempt = Attempt {
            stream: &stream,
            url: &url,
            feed: &mut feed,
            shutdown: &shutdown,
            stats: &stats,
            backoff: &mut backoff,
        };
        let Err(error) = attempt.run().await else {
            break;
        };
        let failure = Failure {
            stream: &stream,
            kind: "SRT",
            to: &url,
            error: &error,
        };
        if !retry_later(failure, &mut backoff, &mut feed, &stats, &shutdown).await {
            break;
        }
    }
    stats.set_state(OutputState::Stopped);
    info!(stream = %stream, url = %url, "output: SRT stopped");
}

/// One connection attempt and, if it connects, its session.
struct Attempt<'a> {
    stream: &'a StreamId,
    url: &'a SrtUrl,
    feed: &'a mut Feed,
    shutdown: &'a CancellationToken,
    stats: &'a OutputStats,
    backoff: &'a mut Backoff,
}

/// How a select round ended.
enum Wake {
    Shutdown,
    Batch(Option<Batch>),
    Datagram(io::Result<usize>),
    Timer,
}

impl Attempt<'_> {
    /// `Ok` when the output must stop (shutdown, end of stream).
    async fn run(self) -> Result<(), SrtOutputError> {
        let host = self.url.host.clone();
        let port = self.url.port;
        let resolve = async {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(|mut addrs| addrs.next())
        };
        let resolved = match dropping_feed(self.feed, self.stats, self.shutdown, resolve).await {
            None => return Ok(()),
            Some(resolved) => resolved,
        };
        let peer = match resolved {
            Ok(Some(peer)) => peer,
            Ok(None) => return Err(SrtOutputError::NoAddress { host }),
            Err(source) => return Err(SrtOutputError::Resolve { host, source }),
        };
        let socket = open(peer)
            .await
            .map_err(|source| SrtOutputError::Socket { peer, source })?;
        let local_ip = socket
            .local_addr()
            .map_err(|source| SrtOutputError::Socket { peer, source })?
            .ip();
        let settings = CallerSettings {
            peer,
            local_ip,
            stream_id: self.url.stream_id.clone(),
            encryption: self.url.passphrase.as_ref().map(|p| {
                (
                    p.expose().to_string(),
                    self.url.key_length.unwrap_or(AesKeyLength::Aes128),
                )
            }),
            latency: self.url.latency,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            socket_id: random_u32() & 0x3FFF_FFFF | 1,
            initial_sequence: random_u32() & 0x7FFF_FFFF,
        };
        let caller = SrtCaller::new(Instant::now().into_std(), settings)
            .map_err(|source| SrtOutputError::Session { peer, source })?;
        Session {
            attempt: self,
            socket,
            peer,
            caller,
            buf: vec![0; 2048],
            message: BytesMut::new(),
        }
        .run()
        .await
    }
}

struct Session<'a> {
    attempt: Attempt<'a>,
    socket: UdpSocket,
    peer: SocketAddr,
    caller: SrtCaller,
    buf: Vec<u8>,
    message: BytesMut,
}

impl Session<'_> {
    async fn run(mut self) -> Result<(), SrtOutputError> {
        let mut close_by: Option<Instant> = None;
        loop {
            self.flush_transmits()?;
            while let Some(event) = self.caller.poll_event() {
                match event {
                    CallerEvent::Connected {
                        latency,
                        max_payload,
                    } => {
                        let a = &mut self.attempt;
                        session_started(a.feed, a.stats);
                        a.backoff.connected(Instant::now().into_std());
                        info!(stream = %a.stream, url = %a.url, peer = %self.peer,
                            latency_ms = latency.as_millis() as u64, max_payload, "output: SRT connected");
                    }
                    CallerEvent::Closed(Ok(())) => {
                        return Ok(());
                    }
                    CallerEvent::Closed(Err(source)) => {
                        return Err(SrtOutputError::Session {
                            peer: self.peer,
                            source,
                        });
                    }
                }
            }
            if let Some(by) = close_by
                && Instant::now() >= by
            {
                self.caller.abort(Instant::now().into_std());
                continue;
            }
            let timer = self
                .caller
                .poll_timeout()
                .map(Instant::from_std)
                .map_or(Instant::now() + Duration::from_secs(1), |t| {
                    close_by.map_or(t, |by| t.min(by))
                });
            let wake = {
                let closing = close_by.is_some();
                let a = &mut self.attempt;
                tokio::select! {
                    biased;
                    () = a.shutdown.cancelled(), if !closing => Wake::Shutdown,
                    batch = a.feed.recv(), if !closing => Wake::Batch(batch),
                    received = self.socket.recv(&mut self.buf) => Wake::Datagram(received),
                    () = tokio::time::sleep_until(timer) => Wake::Timer,
                }
            };
            let now = Instant::now().into_std();
            match wake {
                Wake::Shutdown => {
                    while let Some(batch) = self.attempt.feed.try_recv() {
                        self.send_batch(&batch);
                    }
                    self.caller.close(now);
                    close_by = Some(Instant::now() + CLOSE_TIMEOUT);
                }
                Wake::Batch(Some(batch)) => self.send_batch(&batch),
                Wake::Batch(None) => {
                    self.caller.close(now);
                    close_by = Some(Instant::now() + CLOSE_TIMEOUT);
                }
                Wake::Datagram(Ok(len)) => {
                    if let Some(datagram) = self.buf.get(..len) {
                        self.caller
                            .handle_datagram(now, Bytes::copy_from_slice(datagram));
                    }
                }
                Wake::Datagram(Err(e)) => self.receive_error(e)?,
                Wake::Timer => self.caller.handle_timeout(now),
            }
        }
    }

    /// Sends `batch` as messages of up to 7 TS packets; dropped (counted)
    /// while the handshake is still running.
    fn send_batch(&mut self, batch: &Batch) {
        let stats = self.attempt.stats;
        if !self.caller.is_connected() {
            stats.dropped(batch.len());
            return;
        }
        let now = Instant::now().into_std();
        for chunk in batch.chunks(PACKETS_PER_MESSAGE) {
            self.message.reserve(PACKETS_PER_MESSAGE * TS_PACKET_LEN);
            for packet in chunk {
                self.message.extend_from_slice(packet);
            }
            let message = self.message.split().freeze();
            let len = message.len();
            if self.caller.send(now, message) {
                stats.sent(chunk.len(), len);
            } else {
                stats.dropped(chunk.len());
            }
        }
    }

    /// Sends what the session queued. A datagram the socket cannot take
    /// now is dropped: SRT retransmits data, and handshakes and keepalives
    /// are repeated.
    fn flush_transmits(&mut self) -> Result<(), SrtOutputError> {
        while let Some(datagram) = self.caller.poll_transmit() {
            match self.socket.try_send(&datagram) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    debug!(stream = %self.attempt.stream, "output: SRT socket full, datagram dropped");
                }
                Err(e) => self.send_error(e)?,
            }
        }
        Ok(())
    }

    fn send_error(&mut self, e: io::Error) -> Result<(), SrtOutputError> {
        self.attempt.stats.send_error(0);
        self.receive_error(e)
    }

    /// ECONNREFUSED on a connected UDP socket is the peer's ICMP port
    /// unreachable: the listener is gone. Before the handshake completes
    /// it may just not be up yet, so the handshake keeps trying until its
    /// timeout.
    fn receive_error(&mut self, e: io::Error) -> Result<(), SrtOutputError> {
        match e.kind() {
            io::ErrorKind::ConnectionRefused if self.caller.is_connected() => {
                Err(SrtOutputError::Refused { peer: self.peer })
            }
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::Interrupted => Ok(()),
            _ if self.caller.is_connected() => Err(SrtOutputError::Receive {
                peer: self.peer,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// A UDP socket connected to `peer`, bound to the wildcard address of its
/// family.
async fn open(peer: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(peer).await?;
    Ok(socket)
}

/// Socket ids and initial sequence numbers must not be predictable
/// (SRT RFC draft §4.3: the socket id identifies the connection to the
/// peer). Falls back to the clock if the OS has no randomness to give,
/// which only makes them guessable, not wrong.
fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return nanos ^ std::process::id();
    }
    u32::from_be_bytes(bytes)
}
