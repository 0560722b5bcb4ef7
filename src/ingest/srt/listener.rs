//! The tokio shell of the SRT port: one UDP socket and one [`Endpoint`],
//! routing publishers' data to their stream tasks and stream output to
//! players.
//!
//! The task never awaits anything but the socket, its timers and its
//! player mailbox: stream data goes to stream tasks with `try_send` (a full
//! mailbox drops and counts), datagrams go out with `try_send_to` (a full
//! socket drops; SRT retransmits). So no connection can stall another, the
//! head-of-line blocking srt-tokio has (DESIGN.md).
//!
//! The endpoint's deadline (srt-protocol's TSBPD release of the next
//! packet, among others) is slept on with a [`PreciseTimer`]: on tokio's
//! 1 ms timer every packet reached its stream up to 1 ms late.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::app::registry::{Registry, StreamHandle};
use crate::app::stream::{InputSource, PlayerBatch, StreamMsg};
use crate::app::timer::PreciseTimer;
use crate::config::{Config, InputRole, StreamId};
use crate::ingest::socket::{self, BatchReceiver, RecvBuffer};
use crate::ts::PACKET_SIZE;

use super::{ConnId, ConnStats, Counters, Endpoint, EndpointSettings, Event, Role};

/// TS packets per SRT message to players: 1316 bytes, the payload every
/// SRT implementation uses for live MPEG-TS.
const PACKETS_PER_MESSAGE: usize = 7;

/// Datagrams taken from the socket per wake-up, at most.
const RECV_BATCH: usize = 256;

/// At shutdown, connections get this long to flush and say goodbye.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Timer wake-ups of the task are at least this far apart: a deadline
/// sooner than this after the last one waits for it, and is handled with
/// whatever else fell due by then. A wake-up costs ~25 µs of CPU (measured
/// on the 2-core machine; see `app::timer`), and with 50 publishers at
/// 8 Mbit/s a TSBPD release falls due every ~26 µs in aggregate: a wake-up
/// for each would take a whole core. 200 µs bounds the timer to 5 000
/// wake-ups a second (at most ~12 % of a core) and adds at most 0.2 ms to
/// a release (tokio's timer added up to 1 ms), a tenth of the 2 ms budget
/// for router-added latency. At 8 streams, 50 µs and 200 µs measured the
/// same. Releases are coalesced late rather than early: handing
/// srt-protocol a `now` ahead of the clock would make its time run
/// backwards at the next datagram.
const TIMER_COALESCE: Duration = Duration::from_micros(200);

/// What the API can read about the SRT port, refreshed every second.
#[derive(Debug, Default)]
pub struct SrtMetrics {
    pub counters: Mutex<Counters>,
    pub connections: Mutex<Vec<(ConnId, ConnStats)>>,
    /// Datagrams not sent because the socket's send buffer was full.
    pub send_drops: std::sync::atomic::AtomicU64,
    /// Refused callers by reject code (`RejectCode::code`: 404, 1010, …),
    /// for `/metrics` and tests.
    pub rejections: Mutex<BTreeMap<u16, u64>>,
}

/// How a connection's traffic is routed.
#[derive(Debug)]
enum Route {
    Publisher {
        role: InputRole,
        stream: StreamHandle,
    },
    Player {
        stream: StreamHandle,
    },
}

/// A bound SRT port, ready to run.
#[derive(Debug)]
pub struct SrtListener {
    socket: UdpSocket,
    endpoint: Endpoint,
    registry: Registry,
    routes: HashMap<ConnId, (StreamId, Route)>,
    metrics: Arc<SrtMetrics>,
    send_buffer: BytesMut,
}

impl SrtListener {
    /// Binds the port (`[srt] listen`) with the configured receive buffer
    /// and logs what the kernel granted.
    pub fn bind(
        config: Arc<Config>,
        registry: Registry,
        metrics: Arc<SrtMetrics>,
    ) -> io::Result<SrtListener> {
        let srt = &config.srt;
        let (socket, granted) = socket::bind(srt.listen, srt.recv_buffer.as_usize(), None)?;
        log_recv_buffer(srt.listen, granted);
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)
            .map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
        let settings = EndpointSettings::from_config(&config);
        let endpoint = Endpoint::new(Instant::now(), config, settings, key);
        Ok(SrtListener {
            socket,
            endpoint,
            registry,
            routes: HashMap::new(),
            metrics,
            send_buffer: BytesMut::new(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown`, then closes every connection gracefully.
    pub async fn run(
        mut self,
        mut players: mpsc::Receiver<PlayerBatch>,
        shutdown: CancellationToken,
    ) {
        let mut receiver = BatchReceiver::new(RECV_BATCH);
        let mut batch = Vec::with_capacity(RECV_BATCH);
        let mut metrics_tick = tokio::time::interval(Duration::from_secs(1));
        let mut closing_until: Option<tokio::time::Instant> = None;
        let mut timer = PreciseTimer::new();
        let mut last_timer_wake = Instant::now();
        loop {
            if let Some(until) = closing_until
                && (self.endpoint.connection_count() == 0 || tokio::time::Instant::now() >= until)
            {
                break;
            }
            let deadline = self
                .endpoint
                .poll_timeout()
                .map(|at| at.max(last_timer_wake + TIMER_COALESCE));
            tokio::select! {
                biased;
                () = shutdown.cancelled(), if closing_until.is_none() => {
                    let now = Instant::now();
                    let conns: Vec<ConnId> = self.routes.keys().copied().collect();
                    for conn in conns {
                        self.endpoint.close(now, conn);
                    }
                    self.flush();
                    closing_until = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                received = receiver.recv(&self.socket, &mut batch) => {
                    if let Err(e) = received {
                        // ICMP errors surface on the next recv of a UDP
                        // socket; nothing is lost by going on.
                        tracing::debug!("srt socket receive error: {e}");
                    }
                    let now = Instant::now();
                    for (datagram, from) in batch.drain(..) {
                        self.endpoint.handle_datagram(now, from, datagram);
                        self.flush();
                    }
                }
                Some(first) = players.recv() => {
                    let now = Instant::now();
                    self.send_to_player(now, first);
                    for _ in 0..256 {
                        match players.try_recv() {
                            Ok(more) => self.send_to_player(now, more),
                            Err(_) => break,
                        }
                    }
                    self.flush();
                }
                () = timer.wait_until(deadline) => {
                    last_timer_wake = Instant::now();
                    self.endpoint.handle_timeout(last_timer_wake);
                    self.flush();
                }
                _ = metrics_tick.tick() => self.publish_metrics(),
            }
        }
        self.publish_metrics();
        for (_, (_, route)) in self.routes.drain() {
            drop(route);
        }
    }

    /// Cuts a player's batch into SRT messages of up to 7 packets.
    fn send_to_player(&mut self, now: Instant, batch: PlayerBatch) {
        if !self.routes.contains_key(&batch.conn) {
            return;
        }
        for chunk in batch.packets.chunks(PACKETS_PER_MESSAGE) {
            self.send_buffer.reserve(PACKETS_PER_MESSAGE * PACKET_SIZE);
            for packet in chunk {
                self.send_buffer.extend_from_slice(packet);
            }
            let message = self.send_buffer.split().freeze();
            self.endpoint.send(now, batch.conn, message);
        }
    }

    /// Sends what the endpoint queued and routes its events.
    fn flush(&mut self) {
        while let Some((to, datagram)) = self.endpoint.poll_transmit() {
            if let Err(e) = self.socket.try_send_to(&datagram, to) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.metrics
                        .send_drops
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    tracing::debug!(%to, "srt send failed: {e}");
                }
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.route(event);
        }
    }

    fn route(&mut self, event: Event) {
        match event {
            Event::Data { conn, data } => self.data(conn, data),
            Event::Connected {
                conn,
                peer,
                stream,
                role,
                user,
                key_len,
            } => {
                tracing::info!(
                    conn = conn.0, %peer, stream = %stream, ?role, user = user.as_deref(),
                    encrypted = key_len.map(|k| u32::from(k) * 8),
                    "srt caller accepted"
                );
                let Some(handle) = self.registry.get_or_start(&stream) else {
                    return;
                };
                let (msg, route) = match role {
                    Role::Main | Role::Takeover | Role::Backup => {
                        let role = if role == Role::Backup {
                            InputRole::Backup
                        } else {
                            InputRole::Main
                        };
                        (
                            StreamMsg::InputUp {
                                role,
                                source: InputSource::Srt(conn),
                            },
                            Route::Publisher {
                                role,
                                stream: handle.clone(),
                            },
                        )
                    }
                    Role::Player => (
                        StreamMsg::AttachPlayer { conn },
                        Route::Player {
                            stream: handle.clone(),
                        },
                    ),
                };
                handle.control(msg);
                self.routes.insert(conn, (stream, route));
            }
            Event::Closed { conn, reason } => {
                let Some((stream, route)) = self.routes.remove(&conn) else {
                    return;
                };
                tracing::info!(conn = conn.0, stream = %stream, ?reason, "srt connection closed");
                match route {
                    Route::Publisher { role, stream } => stream.control(StreamMsg::InputDown {
                        role,
                        source: InputSource::Srt(conn),
                    }),
                    Route::Player { stream } => stream.control(StreamMsg::DetachPlayer { conn }),
                }
            }
            Event::Rejected {
                peer,
                stream_id,
                rejection,
            } => {
                tracing::warn!(
                    %peer, stream_id = stream_id.as_deref().unwrap_or(""),
                    code = rejection.code.code(), "srt caller rejected: {rejection}"
                );
                *self
                    .metrics
                    .rejections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(rejection.code.code())
                    .or_default() += 1;
            }
        }
    }

    fn data(&mut self, conn: ConnId, data: Bytes) {
        let Some((id, Route::Publisher { role, stream })) = self.routes.get_mut(&conn) else {
            return;
        };
        let role = *role;
        match stream.mailbox.try_send(StreamMsg::Data { role, data }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => stream.metrics.count_mailbox_drop(),
            Err(mpsc::error::TrySendError::Closed(StreamMsg::Data { data, .. })) => {
                // The stream task ended (idle) just as data came: start it
                // again and re-announce the input.
                if let Some(handle) = self.registry.get_or_start(id) {
                    handle.control(StreamMsg::InputUp {
                        role,
                        source: InputSource::Srt(conn),
                    });
                    let _ = handle.mailbox.try_send(StreamMsg::Data { role, data });
                    *stream = handle;
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn publish_metrics(&self) {
        *self
            .metrics
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = self.endpoint.counters().clone();
        let mut conns: Vec<(ConnId, ConnStats)> = self
            .routes
            .keys()
            .filter_map(|conn| Some((*conn, self.endpoint.stats(*conn)?)))
            .collect();
        conns.sort_by_key(|(conn, _)| *conn);
        *self
            .metrics
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = conns;
    }
}

/// One line at start-up: what the kernel gave for `SO_RCVBUF`.
pub fn log_recv_buffer(listen: SocketAddr, granted: RecvBuffer) {
    // Linux reports twice the usable size.
    if granted.granted / 2 >= granted.asked || granted.granted >= granted.asked {
        tracing::info!(
            %listen, asked = granted.asked, granted = granted.granted, forced = granted.forced,
            "socket receive buffer"
        );
    } else {
        tracing::warn!(
            %listen, asked = granted.asked, granted = granted.granted,
            rmem_max = socket::rmem_max(),
            "socket receive buffer smaller than asked: raise net.core.rmem_max \
             (sysctl -w net.core.rmem_max={}) or run with CAP_NET_ADMIN",
            granted.asked
        );
    }
}
