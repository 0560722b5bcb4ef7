//! `kind = "udp"`: send a stream as UDP datagrams of up to seven TS
//! packets (1316 bytes, the payload size every TS-over-UDP receiver
//! expects and that fits a 1500-byte MTU), unicast or multicast.
//!
//! Each batch from the stream goes out at once as full 7-packet datagrams,
//! its remainder in one shorter datagram: the stream task already hands
//! packets over as they arrive, so holding a tail back to fill a datagram
//! would only add latency.
//!
//! UDP has no session, so a send error (ECONNREFUSED from an ICMP port
//! unreachable when nobody listens on a unicast port, ENOBUFS, a route
//! that went away) is counted and the datagram dropped. Only when every
//! send has failed for [`FAILING_FOR`] is the socket re-created (with the
//! backoff), which picks up a changed route or interface.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::downtime::{dropping_feed, session_started};
use super::stats::{OutputState, OutputStats};
use super::{Batch, Feed, TS_PACKET_LEN};
use crate::config::{self, StreamId};

/// TS packets per datagram.
pub const PACKETS_PER_DATAGRAM: usize = 7;

/// Sends failing without a single success for this long end the session.
pub const FAILING_FOR: Duration = Duration::from_secs(5);

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
/// (then sends what is left in the feed and returns).
pub async fn run(
    stream: StreamId,
    target: UdpTarget,
    reconnect: config::Backoff,
    mut feed: Feed,
    shutdown: CancellationToken,
    stats: Arc<OutputStats>,
) {
    let mut backoff = Backoff::new(reconnect);
    stats.set_state(OutputState::Connecting);
    loop {
        let result = match open(&target) {
            Err(e) => Err(e),
            Ok(socket) => {
                session_started(&mut feed, &stats);
                backoff.connected(Instant::now().into_std());
                info!(stream = %stream, address = %target.address, "output: sending UDP");
                Sender::new(&stream, socket, target.address)
                    .run(&mut feed, &shutdown, &stats)
                    .await
            }
        };
        match result {
            Ok(()) => break,
            Err(e) => {
                let delay = backoff.failed(Instant::now().into_std());
                warn!(stream = %stream, error = %e, retry_in_ms = delay.as_millis() as u64, "output: UDP failed");
                stats.failed(&e);
                let wake = Instant::now() + delay;
                let slept =
                    dropping_feed(&mut feed, &stats, &shutdown, tokio::time::sleep_until(wake))
                        .await;
                if slept.is_none() {
                    break;
                }
            }
        }
    }
    stats.set_state(OutputState::Stopped);
    info!(stream = %stream, address = %target.address, "output: UDP stopped");
}

/// A socket bound to the wildcard address and connected to the target,
/// so the kernel picks the route (and the source address) once.
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
    UdpSocket::from_std(socket.into()).map_err(fail("register with tokio"))
}

struct Sender<'a> {
    stream: &'a StreamId,
    socket: UdpSocket,
    address: SocketAddr,
    datagram: Vec<u8>,
    /// Since when every send has failed.
    failing_since: Option<Instant>,
    last_logged: Option<Instant>,
}

impl<'a> Sender<'a> {
    fn new(stream: &'a StreamId, socket: UdpSocket, address: SocketAddr) -> Sender<'a> {
        Sender {
            stream,
            socket,
            address,
            datagram: Vec::with_capacity(PACKETS_PER_DATAGRAM * TS_PACKET_LEN),
            failing_since: None,
            last_logged: None,
        }
    }

    async fn run(
        mut self,
        feed: &mut Feed,
        shutdown: &CancellationToken,
        stats: &OutputStats,
    ) -> Result<(), UdpError> {
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    while let Some(batch) = feed.try_recv() {
                        self.send_batch(&batch, stats).await?;
                    }
                    return Ok(());
                }
                batch = feed.recv() => match batch {
                    Some(batch) => self.send_batch(&batch, stats).await?,
                    None => return Ok(()),
                },
            }
        }
    }

    async fn send_batch(&mut self, batch: &Batch, stats: &OutputStats) -> Result<(), UdpError> {
        for chunk in batch.chunks(PACKETS_PER_DATAGRAM) {
            self.datagram.clear();
            for packet in chunk {
                self.datagram.extend_from_slice(packet);
            }
            match self.socket.send(&self.datagram).await {
                Ok(_) => {
                    self.failing_since = None;
                    stats.sent(chunk.len(), self.datagram.len());
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
                        warn!(stream = %self.stream, address = %self.address, error = %e,
                            "output: UDP send failed (counted; further errors logged at most every {}s)",
                            ERROR_LOG_INTERVAL.as_secs());
                    }
                }
            }
        }
        Ok(())
    }
}
