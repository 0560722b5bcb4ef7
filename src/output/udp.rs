//! `kind = "udp"`: send a stream as UDP datagrams of up to seven TS
//! packets (1316 bytes, the payload size every TS-over-UDP receiver
//! expects and that fits a 1500-byte MTU), unicast or multicast.
//!
//! Each batch from the stream goes out at once as full 7-packet datagrams,
//! its remainder in one shorter datagram: the stream task already hands
//! packets over as they arrive, so holding a tail back to fill a datagram
//! would only add latency.
//!
//! [`DirectUdp`] is the output; the router's stream task calls it itself.
//! [`run`] drives one in a task of its own, fed like every other output.
//!
//! UDP has no session, so a send error (ECONNREFUSED from an ICMP port
//! unreachable when nobody listens on a unicast port, ENOBUFS, a route
//! that went away) is counted and the datagram dropped. Only when every
//! send has failed for [`FAILING_FOR`] is the socket re-created (with the
//! backoff), which picks up a changed route or interface.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::downtime::drop_pending;
use super::stats::{OutputState, OutputStats};
use super::{Batch, Feed, TS_PACKET_LEN};
use crate::config::{self, StreamId};

/// TS packets per datagram.
pub const PACKETS_PER_DATAGRAM: usize = 7;

/// Sends failing without a single success for this long end the session.
pub const FAILING_FOR: Duration = Duration::from_secs(5);

/// How long a task waits before trying again when the socket's send buffer
/// is full.
const BLOCKED_RETRY: Duration = Duration::from_millis(1);

/// Send errors are logged at most this often (they are all counted).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where and how to send (the `udp` fields of [`config::OutputKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTarget {
    pub address: SocketAddr,
    /// IP TTL, or the multicast TTL/hop limit for a multicast address;
    /// `None` keeps the system default (1 for multicast).
    pub ttl: Option<u8>,
    /// `IP_MULTICAST_IF`: the local IPv4 address to send multicast from.
    pub multicast_interface: Option<IpAddr>,
}

/// Why a UDP session ended.
#[derive(Debug, thiserror::Error)]
pub enum UdpError {
    #[error("cannot set up a UDP socket to {address}: {what}: {source}")]
    Socket {
        address: SocketAddr,
        what: &'static str,
        source: io::Error,
    },
    #[error("every send to {address} failed for {}s, the last with: {source}", FAILING_FOR.as_secs())]
    Failing {
        address: SocketAddr,
        source: io::Error,
    },
}

/// Sends `stream` to `target` until `shutdown` fires or the feed closes
/// (then sends what is left in the feed and returns): a [`DirectUdp`] in a
/// task of its own, for callers that feed outputs through a [`Feed`].
pub async fn run(
    stream: StreamId,
    target: UdpTarget,
    reconnect: config::Backoff,
    mut feed: Feed,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
) {
    let mut out = DirectUdp::new(stream, target, reconnect, stats.clone());
    out.poll(Instant::now());
    loop {
        let batch = tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                while let Some(batch) = feed.try_recv() {
                    send_all(&mut out, batch).await;
                }
                break;
            }
            batch = feed.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        out.poll(Instant::now());
        if out.take_rejoin() {
            // A new session after a gap: what is queued is mid-GOP; the
            // stream restarts this output at a splice point.
            stats.dropped(batch.len());
            drop_pending(&mut feed, &stats);
            feed.rejoin();
            continue;
        }
        send_all(&mut out, batch).await;
    }
}

/// Sends `batch`, waiting while the socket's send buffer is full (rare for
/// UDP: it drains at the interface's rate).
async fn send_all(out: &mut DirectUdp, mut batch: Batch) {
    while let Delivery::Blocked(rest) = out.send(batch) {
        batch = rest;
        tokio::time::sleep(BLOCKED_RETRY).await;
    }
}

/// A socket bound to the wildcard address and connected to the target,
/// so the kernel picks the route (and the source address) once.
///
/// A plain non-blocking socket, not registered with tokio: every send is
/// tried at once (tokio's `try_send` reports `WouldBlock` until its reactor
/// has seen the socket writable), and no readiness events are generated
/// for a socket nobody waits on.
fn open(target: &UdpTarget) -> Result<UdpSocket, UdpError> {
    let address = target.address;
    let fail = |what| {
        move |source| UdpError::Socket {
            address,
            what,
            source,
        }
    };
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(fail("socket"))?;
    let multicast = address.ip().is_multicast();
    if let Some(ttl) = target.ttl.map(u32::from) {
        match (address, multicast) {
            (SocketAddr::V4(_), true) => socket
                .set_multicast_ttl_v4(ttl)
                .map_err(fail("IP_MULTICAST_TTL"))?,
            (SocketAddr::V4(_), false) => socket.set_ttl_v4(ttl).map_err(fail("IP_TTL"))?,
            (SocketAddr::V6(_), true) => socket
                .set_multicast_hops_v6(ttl)
                .map_err(fail("IPV6_MULTICAST_HOPS"))?,
            (SocketAddr::V6(_), false) => socket
                .set_unicast_hops_v6(ttl)
                .map_err(fail("IPV6_UNICAST_HOPS"))?,
        }
    }
    if let (Some(IpAddr::V4(interface)), true) = (target.multicast_interface, multicast) {
        socket
            .set_multicast_if_v4(&interface)
            .map_err(fail("IP_MULTICAST_IF"))?;
    }
    socket.set_nonblocking(true).map_err(fail("O_NONBLOCK"))?;
    let any: SocketAddr = match address {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    socket.bind(&any.into()).map_err(fail("bind"))?;
    socket.connect(&address.into()).map_err(fail("connect"))?;
    Ok(socket.into())
}

/// One UDP session's socket and its send-error bookkeeping.
#[derive(Debug)]
struct Sender {
    socket: UdpSocket,
    address: SocketAddr,
    datagram: Vec<u8>,
    /// Since when every send has failed.
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
}

/// How far [`Sender::try_send`] got.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Done,
    /// The socket's send buffer is full: the packets from this index on
    /// are not sent yet.
    Blocked(usize),
}

impl Sender {
    fn new(socket: UdpSocket, address: SocketAddr) -> Sender {
        Sender {
            socket,
            address,
            datagram: Vec::with_capacity(PACKETS_PER_DATAGRAM * TS_PACKET_LEN),
            failing_since: None,
            last_logged: None,
        }
    }

    /// Sends `batch` as full 7-packet datagrams and a shorter remainder,
    /// without waiting. A send error is counted and the datagram dropped;
    /// only when every send has failed for [`FAILING_FOR`] does the
    /// session end.
    fn try_send(
        &mut self,
        stream: &StreamId,
        batch: &[Bytes],
        stats: &OutputStats,
    ) -> Result<Progress, UdpError> {
        for (at, chunk) in batch.chunks(PACKETS_PER_DATAGRAM).enumerate() {
            self.datagram.clear();
            for packet in chunk {
                self.datagram.extend_from_slice(packet);
            }
            match self.socket.send(&self.datagram) {
                Ok(_) => {
                    self.failing_since = None;
                    stats.sent(chunk.len(), self.datagram.len());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Progress::Blocked(at * PACKETS_PER_DATAGRAM));
                }
                Err(e) => {
                    stats.send_error(chunk.len());
                    let now = Instant::now();
                    let since = *self.failing_since.get_or_insert(now);
                    if now.duration_since(since) >= FAILING_FOR {
                        return Err(UdpError::Failing {
                            address: self.address,
                            source: e,
                        });
                    }
                    if self
                        .last_logged
                        .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
                    {
                        self.last_logged = Some(now);
                        warn!(stream = %stream, address = %self.address, error = %e,
                            "output: UDP send failed (counted; further errors logged at most every {}s)",
                            ERROR_LOG_INTERVAL.as_secs());
                    }
                }
            }
        }
        Ok(Progress::Done)
    }
}

/// A UDP output sent from the stream task itself, with no task of its own.
///
/// A UDP send is one non-blocking system call that never waits for a
/// peer, so the stream task can make it where it would otherwise wake an
/// output task: each datagram then crosses one task fewer, which is most
/// of the latency a relay adds under load (`tools/loadgen`). The contract
/// of the other outputs holds: errors are counted, a failing session is
/// re-opened with backoff while the stream's packets are dropped (counted),
/// and a new session after a gap starts at a splice point
/// ([`DirectUdp::take_rejoin`]).
#[derive(Debug)]
pub struct DirectUdp {
    stream: StreamId,
    target: UdpTarget,
    backoff: Backoff,
    stats: Arc<OutputStats>,
    link: Link,
    rejoin: bool,
}

#[derive(Debug)]
enum Link {
    Up(Sender),
    /// Not open: the first attempt, or after a failure; the next attempt
    /// is due at this time.
    Down(Instant),
}

/// What happened to a batch given to [`DirectUdp::send`].
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent, or dropped and counted while the output is down.
    Done,
    /// The socket's send buffer is full: these packets are not sent yet.
    Blocked(Batch),
}

impl DirectUdp {
    /// An output to `target`, opened by the first [`DirectUdp::poll`].
    pub fn new(
        stream: StreamId,
        target: UdpTarget,
        reconnect: config::Backoff,
        stats: Arc<OutputStats>,
    ) -> DirectUdp {
        stats.set_state(OutputState::Connecting);
        DirectUdp {
            stream,
            target,
            backoff: Backoff::new(reconnect),
            stats,
            link: Link::Down(Instant::now()),
            rejoin: false,
        }
    }

    pub fn stats(&self) -> &Arc<OutputStats> {
        &self.stats
    }

    /// Opens the socket when an attempt is due.
    pub fn poll(&mut self, now: Instant) {
        let Link::Down(due) = self.link else {
            return;
        };
        if now < due {
            return;
        }
        match open(&self.target) {
            Ok(socket) => {
                let before = self.stats.snapshot();
                self.rejoin = before.sessions > 0 || before.packets_dropped > 0;
                self.stats.session_started();
                self.backoff.connected(now.into_std());
                info!(stream = %self.stream, address = %self.target.address, "output: sending UDP");
                self.link = Link::Up(Sender::new(socket, self.target.address));
            }
            Err(e) => self.failed(now, &e),
        }
    }

    fn failed(&mut self, now: Instant, e: &UdpError) {
        let delay = self.backoff.failed(now.into_std());
        warn!(stream = %self.stream, error = %e, retry_in_ms = delay.as_millis() as u64, "output: UDP failed");
        self.stats.failed(e);
        self.link = Link::Down(now + delay);
    }

    /// True once after a session started that follows a gap: the stream
    /// restarts this output at its latest splice point.
    pub fn take_rejoin(&mut self) -> bool {
        std::mem::take(&mut self.rejoin)
    }

    /// Sends `batch` now, or drops it (counted) while the output is down.
    pub fn send(&mut self, batch: Batch) -> Delivery {
        let Link::Up(sender) = &mut self.link else {
            self.stats.dropped(batch.len());
            return Delivery::Done;
        };
        match sender.try_send(&self.stream, &batch, &self.stats) {
            Ok(Progress::Done) => Delivery::Done,
            Ok(Progress::Blocked(at)) => {
                let mut batch = batch;
                batch.drain(..at);
                Delivery::Blocked(batch)
            }
            Err(e) => {
                self.failed(Instant::now(), &e);
                Delivery::Done
            }
        }
    }
}

impl Drop for DirectUdp {
    fn drop(&mut self) {
        self.stats.set_state(OutputState::Stopped);
        info!(stream = %self.stream, address = %self.target.address, "output: UDP stopped");
    }
}
