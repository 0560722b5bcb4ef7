//! One UDP port, many SRT connections: a sans-IO connection table over the
//! srt-protocol 0.4.4 state machines.
//!
//! The shell feeds datagrams ([`Endpoint::handle_datagram`]) and wake-ups
//! ([`Endpoint::handle_timeout`]) with the current time, and drains
//! [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`];
//! [`Endpoint::poll_timeout`] says when to wake it next. No socket, no clock
//! read, no randomness (the shell supplies a secret key), no task, no
//! channel: a slow or hostile peer can only cost its own connection's
//! bounded srt-protocol buffers.
//!
//! Defence in depth against srt-protocol's network-reachable panics (the
//! panic table in `docs/srt-ingest-notes.md` §2):
//!
//! 1. The [`gate`] reads every handshake and control packet before
//!    `Packet::parse`. Inductions are answered by hand (no srt-protocol
//!    code runs for them) with a stateless cookie; conclusions are
//!    rebuilt into a canonical form with only HSREQ, KMREQ and SID.
//! 2. Every call into srt-protocol for one connection, serialisation of its
//!    answers included, runs under `catch_unwind`. A connection whose state
//!    machine panicked is discarded whole and never touched again
//!    ([`CloseReason::Panicked`]), which is what makes `AssertUnwindSafe`
//!    sound: nothing shared is mutated inside the closure (outputs are
//!    collected in locals), and the only state a panic can leave broken is
//!    dropped. This needs `panic = "unwind"` in every profile.
//!
//! Bounds: a handshake keeps no state until it is accepted; the table is
//! capped in total and per source IP ([`EndpointSettings`]); an accepted
//! connection that never hears from its peer is dropped after the
//! handshake timeout, and a silent one after srt-protocol's peer idle
//! timeout.
//!
//! How srt-protocol's `Listen` is driven (the "Listen dance"): it only
//! takes a conclusion carrying the cookie it issued itself, so each
//! conclusion that passed our cookie check gets a fresh `Listen`, fed a
//! synthetic induction, then the conclusion with `Listen`'s cookie, then the
//! access-control answer; the reply's cookie is set back to ours.

use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use siphasher::sip::SipHasher13;
use srt_protocol::connection::{Action, DuplexConnection, Input};
use srt_protocol::packet::{
    Acknowledgement, ControlPacket, ControlTypes, HandshakeControlInfo, HandshakeVsInfo, HsV5Info,
    Packet, RejectReason, ShakeType, SocketId,
};
use srt_protocol::protocol::handshake::Handshake as ConnectionHandshake;
use srt_protocol::protocol::pending_connection::listen::Listen;
use srt_protocol::protocol::pending_connection::{
    AccessControlResponse, ConnectionReject, ConnectionResult,
};
use srt_protocol::settings::{ConnInitSettings, KeySettings, KeySize, Passphrase};

use crate::config::{Config, StreamId};

use super::admission::{
    self, Accepted, Admission, Caller, Publishers, RejectCode, Rejection, Role,
};
use super::cookie::CookieJar;
use super::gate::{self, Handshake, Kind, Unsupported};

/// The longest a connection is left alone, whatever srt-protocol asks
/// (`Instant + Duration` must not overflow).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A connection on the endpoint: our SRT socket id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

/// Limits of the connection table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Connections (publishers and players) beyond this are rejected with
    /// 1005 (backlog). `[srt] max_connections`.
    pub max_connections: usize,
    /// Connections from one IP address beyond this are rejected with 1005.
    pub max_connections_per_ip: usize,
    /// Our TSBPD latency. `[srt] latency_ms`.
    pub latency: Duration,
    /// The largest TSBPD latency a caller may ask for; above it: 406.
    pub max_latency: Duration,
    /// An accepted connection that has not heard from its peer in this time
    /// is dropped. `[srt] handshake_timeout_ms`.
    pub handshake_timeout: Duration,
    /// A connection that hears nothing from its peer for this long is closed
    /// (srt-protocol's peer idle timeout).
    pub idle_timeout: Duration,
    /// At most this many srt-protocol actions per connection per call, so
    /// that one connection cannot monopolise the endpoint.
    pub max_actions_per_call: usize,
    /// The socket is IPv6: handshakes carry 128-bit peer addresses.
    pub ipv6: bool,
}

impl EndpointSettings {
    /// Settings from `[srt]`, with the per-IP cap and latency bound of the
    /// prototype's measurements.
    pub fn from_config(config: &Config) -> EndpointSettings {
        EndpointSettings {
            max_connections: usize::try_from(config.srt.max_connections).unwrap_or(usize::MAX),
            max_connections_per_ip: 256,
            latency: config.srt.latency,
            max_latency: Duration::from_secs(10),
            handshake_timeout: config.srt.handshake_timeout,
            idle_timeout: Duration::from_secs(5),
            max_actions_per_call: 4096,
            ipv6: config.srt.listen.is_ipv6(),
        }
    }
}

/// What happened on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A caller was accepted. For [`Role::Takeover`], the previous main
    /// publisher was closed just before ([`CloseReason::TakenOver`]).
    Connected {
        conn: ConnId,
        peer: SocketAddr,
        stream: StreamId,
        role: Role,
        user: Option<String>,
        /// AES key length in bytes, `None` when unencrypted.
        key_len: Option<u8>,
    },
    /// A caller was refused (by admission, the caps, or srt-protocol's key
    /// unwrap: 1010 bad secret). Nothing of it is kept.
    Rejected {
        peer: SocketAddr,
        /// As sent, not percent-decoded.
        stream_id: Option<String>,
        rejection: Rejection,
    },
    /// Stream data from a publisher, in order and after the TSBPD delay:
    /// one SRT message (usually 7 TS packets).
    Data { conn: ConnId, data: Bytes },
    /// A connection is gone; its id is never used again by this endpoint.
    Closed { conn: ConnId, reason: CloseReason },
}

/// Why a connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// srt-protocol closed it: the peer's shutdown, its idle timeout, or
    /// the end of a local [`Endpoint::close`].
    Closed,
    /// A publisher declaring itself main replaced it
    /// (`second_publisher = "takeover"`).
    TakenOver,
    /// The peer never sent a packet after the handshake.
    HandshakeTimeout,
    /// srt-protocol panicked on this connection; it was discarded.
    Panicked,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub datagrams: u64,
    pub inductions: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Panics caught from srt-protocol (each one discarded a connection or
    /// a handshake).
    pub panics: u64,
    /// Discarded datagrams, by [`gate::Discard::label`] and by the endpoint's own
    /// reasons (`unknown_connection`, `wrong_peer`, `bad_cookie`,
    /// `unparsable`).
    pub discards: HashMap<&'static str, u64>,
}

impl Counters {
    pub fn discarded(&self, label: &str) -> u64 {
        self.discards.get(label).copied().unwrap_or(0)
    }
}

/// Per-connection statistics for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnStats {
    pub peer: SocketAddr,
    pub stream: StreamId,
    pub role: Role,
    /// Smoothed RTT: from our own full ACKs (publishers) or the peer's
    /// (players). srt-protocol 0.4.4 never fills its RTT statistics.
    pub rtt: Option<Duration>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_lost: u64,
    pub rx_retransmitted: u64,
    pub rx_dropped: u64,
    pub rx_decrypt_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_retransmitted: u64,
    pub tx_dropped: u64,
}

struct Conn {
    machine: DuplexConnection,
    peer: SocketAddr,
    remote_socket_id: u32,
    stream: StreamId,
    role: Role,
    deadline: Instant,
    accepted_at: Instant,
    heard_from_peer: bool,
    rtt: Option<Duration>,
}

/// The SRT publishers of one stream on this endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Slots {
    main: Option<ConnId>,
    backup: Option<ConnId>,
}

/// The connection table of one SRT port.
///
/// Contract with the shell: after every `handle_*`, `send` or `close`, drain
/// [`Endpoint::poll_transmit`] (datagrams to send; dropping one on a full
/// socket is fine, SRT retransmits) and [`Endpoint::poll_event`], then
/// sleep until [`Endpoint::poll_timeout`] or the next datagram, whichever
/// comes first. Both queues only grow by what one call produced, so a
/// shell that drains after each call holds them bounded.
pub struct Endpoint {
    config: Arc<Config>,
    settings: EndpointSettings,
    cookies: CookieJar,
    id_key: [u8; 16],
    id_counter: u64,
    listener_id: u32,
    conns: HashMap<ConnId, Conn>,
    by_peer: HashMap<(SocketAddr, u32), ConnId>,
    per_ip: HashMap<IpAddr, usize>,
    slots: HashMap<StreamId, Slots>,
    transmits: VecDeque<(SocketAddr, Bytes)>,
    events: VecDeque<Event>,
    counters: Counters,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("connections", &self.conns.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// What the Listen dance produced for one conclusion.
enum Concluded {
    Connected {
        reply: Option<(SocketAddr, Bytes)>,
        machine: Box<DuplexConnection>,
    },
    Rejected {
        reply: Option<(SocketAddr, Bytes)>,
        reason: RejectReason,
    },
}

impl Endpoint {
    /// `key` keys the induction cookies and the socket ids: draw it from the
    /// OS in production (and share it between `SO_REUSEPORT` shards).
    pub fn new(
        now: Instant,
        config: Arc<Config>,
        settings: EndpointSettings,
        key: [u8; 16],
    ) -> Endpoint {
        let mut endpoint = Endpoint {
            config,
            settings,
            cookies: CookieJar::new(key, now),
            id_key: key,
            id_counter: 0,
            listener_id: 0,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            per_ip: HashMap::new(),
            slots: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
        };
        endpoint.listener_id = endpoint.fresh_socket_id();
        endpoint
    }

    /// Replaces the configuration for future handshakes; established
    /// connections keep what they were admitted with.
    pub fn set_config(&mut self, config: Arc<Config>) {
        self.config = config;
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Sizes of every per-peer table, for leak tests: connections, peer
    /// index, per-IP counts, stream slots.
    pub fn table_sizes(&self) -> [usize; 4] {
        [
            self.conns.len(),
            self.by_peer.len(),
            self.per_ip.len(),
            self.slots.len(),
        ]
    }

    /// The current SRT publishers of `stream`.
    pub fn publishers(&self, stream: &StreamId) -> Publishers {
        let slots = self.slots.get(stream).copied().unwrap_or_default();
        Publishers {
            main: slots.main.is_some(),
            backup: slots.backup.is_some(),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .map(|c| {
                if c.heard_from_peer {
                    c.deadline
                } else {
                    c.deadline
                        .min(c.accepted_at + self.settings.handshake_timeout)
                }
            })
            .min()
    }

    /// Drives every connection whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let handshake_timeout = self.settings.handshake_timeout;
        let mut due: Vec<(ConnId, bool)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| {
                let silent = !c.heard_from_peer && now >= c.accepted_at + handshake_timeout;
                (silent || c.deadline <= now).then_some((*id, silent))
            })
            .collect();
        due.sort_unstable();
        for (id, silent) in due {
            if silent {
                self.remove(id, CloseReason::HandshakeTimeout);
            } else {
                self.drive(now, id, Input::Timer);
            }
        }
    }

    /// Queues data for a player's sender. srt-protocol's send buffer is
    /// bounded (oldest dropped, counted in `tx_dropped`) and drops packets
    /// older than max(1.25 × latency, 1 s), so a player that never reads
    /// costs at most that buffer. Returns false for an unknown connection.
    pub fn send(&mut self, now: Instant, conn: ConnId, data: Bytes) -> bool {
        if !self.conns.contains_key(&conn) {
            return false;
        }
        self.drive(now, conn, Input::Data(Some((now, data))));
        true
    }

    /// Graceful close: srt-protocol flushes what it holds, sends a shutdown,
    /// and reports [`Event::Closed`] when done.
    pub fn close(&mut self, now: Instant, conn: ConnId) {
        self.drive(now, conn, Input::Data(None));
    }

    pub fn stats(&self, conn: ConnId) -> Option<ConnStats> {
        let c = self.conns.get(&conn)?;
        let s = c.machine.statistics();
        Some(ConnStats {
            peer: c.peer,
            stream: c.stream.clone(),
            role: c.role,
            rtt: c.rtt,
            rx_packets: s.rx_data,
            rx_bytes: s.rx_bytes,
            rx_lost: s.rx_loss_data,
            rx_retransmitted: s.rx_retransmit_data,
            rx_dropped: s.rx_dropped_data,
            rx_decrypt_errors: s.rx_decrypt_errors,
            tx_packets: s.tx_data,
            tx_bytes: s.tx_bytes,
            tx_retransmitted: s.tx_retransmit_data,
            tx_dropped: s.tx_dropped_data,
        })
    }

    fn discard(&mut self, label: &'static str) {
        *self.counters.discards.entry(label).or_default() += 1;
    }

    /// Takes one datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: Bytes) {
        self.counters.datagrams += 1;
        let kind = match Kind::read(&datagram) {
            Ok(kind) => kind,
            Err(e) => return self.discard(e.label()),
        };
        let dest = match kind {
            Kind::Control { ty, .. } if ty == gate::control_type::HANDSHAKE => {
                return self.handle_handshake(now, from, &datagram);
            }
            Kind::Control { ty, subtype, dest } => {
                if let Err(e) = gate::check_established_control(&datagram, ty, subtype) {
                    return self.discard(e.label());
                }
                dest
            }
            Kind::Data { dest } => dest,
        };
        let id = ConnId(dest);
        match self.conns.get(&id) {
            None => self.discard("unknown_connection"),
            Some(c) if c.peer != from => self.discard("wrong_peer"),
            Some(_) => self.feed(now, id, from, datagram),
        }
    }

    /// Parses a gated datagram for connection `id` and drives it.
    fn feed(&mut self, now: Instant, id: ConnId, from: SocketAddr, datagram: Bytes) {
        let ipv6 = self.settings.ipv6;
        // Parsing from a `Bytes` keeps data payloads zero-copy slices of the
        // receive buffer (`copy_to_bytes` on `Bytes` only slices).
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            Packet::parse(&mut datagram.clone(), ipv6)
        }));
        let packet = match parsed {
            Ok(Ok(packet)) => packet,
            Ok(Err(_)) => return self.discard("unparsable"),
            Err(_) => {
                // The parser holds no state: only the datagram is lost.
                self.counters.panics += 1;
                return self.discard("unparsable");
            }
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.heard_from_peer = true;
            // A player's RTT: the peer's full ACKs carry its smoothed RTT.
            if let Packet::Control(ControlPacket {
                control_type: ControlTypes::Ack(ack),
                ..
            }) = &packet
                && let Some(rtt) = ack.rtt()
            {
                c.rtt = u64::try_from(rtt.mean().as_micros())
                    .ok()
                    .map(Duration::from_micros);
            }
        }
        self.drive(now, id, Input::Packet(Ok((packet, from))));
    }

    /// Runs connection `id`'s state machine on `input` until it waits,
    /// under the unwind boundary.
    fn drive(&mut self, now: Instant, id: ConnId, input: Input) {
        let limit = self.settings.max_actions_per_call;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let mut out: Vec<(SocketAddr, Bytes)> = Vec::new();
        let mut data: Vec<Bytes> = Vec::new();
        let mut closed = false;
        let mut deadline = now;
        let mut rtt = None;
        let machine = &mut conn.machine;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut input = input;
            for _ in 0..limit {
                match machine.handle_input(now, input) {
                    Action::SendPacket((packet, to)) => {
                        // Our own full ACKs carry the receiver's smoothed RTT
                        // (SRT RFC draft §3.2.4).
                        if let Packet::Control(ControlPacket {
                            control_type: ControlTypes::Ack(Acknowledgement::Full(_, stats, _)),
                            ..
                        }) = &packet
                        {
                            rtt = Some(stats.rtt.mean().as_micros());
                        }
                        out.push((to, serialize(&packet)));
                        input = Input::PacketSent;
                    }
                    Action::ReleaseData((_, bytes)) => {
                        data.push(bytes);
                        input = Input::DataReleased;
                    }
                    Action::UpdateStatistics(_) => input = Input::StatisticsUpdated,
                    Action::WaitForData(wait) => {
                        deadline = now + wait.min(MAX_WAIT);
                        return;
                    }
                    Action::Close => {
                        closed = true;
                        return;
                    }
                }
            }
            // Limit reached: come back at once, after the others.
        }));
        self.transmits.extend(out);
        self.events
            .extend(data.into_iter().map(|data| Event::Data { conn: id, data }));
        match result {
            Ok(()) if closed => {
                self.remove(id, CloseReason::Closed);
            }
            Ok(()) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.deadline = deadline;
                    if let Some(us) = rtt.and_then(|us| u64::try_from(us).ok()) {
                        c.rtt = Some(Duration::from_micros(us));
                    }
                }
            }
            Err(_) => {
                self.counters.panics += 1;
                self.remove(id, CloseReason::Panicked);
            }
        }
    }

    /// Removes connection `id` at once, after letting srt-protocol send its
    /// shutdown (best effort: its packets of one call are sent, whatever it
    /// would do later is not).
    fn shut_down(&mut self, now: Instant, id: ConnId, reason: CloseReason) {
        let limit = self.settings.max_actions_per_call;
        let Some(mut c) = self.remove(id, reason) else {
            return;
        };
        let mut out = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut input = Input::Data(None);
            for _ in 0..limit {
                match c.machine.handle_input(now, input) {
                    Action::SendPacket((packet, to)) => {
                        out.push((to, serialize(&packet)));
                        input = Input::PacketSent;
                    }
                    Action::ReleaseData(_) => input = Input::DataReleased,
                    Action::UpdateStatistics(_) => input = Input::StatisticsUpdated,
                    Action::WaitForData(_) | Action::Close => return,
                }
            }
        }));
        match result {
            Ok(()) => self.transmits.extend(out),
            Err(_) => self.counters.panics += 1,
        }
    }

    fn remove(&mut self, id: ConnId, reason: CloseReason) -> Option<Conn> {
        let c = self.conns.remove(&id)?;
        self.by_peer.remove(&(c.peer, c.remote_socket_id));
        if let Some(n) = self.per_ip.get_mut(&c.peer.ip()) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&c.peer.ip());
            }
        }
        if let Some(slots) = self.slots.get_mut(&c.stream) {
            if slots.main == Some(id) {
                slots.main = None;
            }
            if slots.backup == Some(id) {
                slots.backup = None;
            }
            if slots.main.is_none() && slots.backup.is_none() {
                self.slots.remove(&c.stream);
            }
        }
        self.events.push_back(Event::Closed { conn: id, reason });
        Some(c)
    }

    fn handle_handshake(&mut self, now: Instant, from: SocketAddr, datagram: &Bytes) {
        let handshake = match Handshake::read(datagram) {
            Ok(handshake) => handshake,
            Err(e) => return self.discard(e.label()),
        };
        if handshake.is_induction() {
            self.counters.inductions += 1;
            let cookie = self.cookies.issue(now, from, handshake.socket_id);
            let reply = induction_reply(datagram, &handshake, self.listener_id, cookie, from);
            self.transmits.push_back((from, reply));
            return;
        }
        // A retransmitted conclusion of a connection already accepted (our
        // answer was lost): the connection answers from its stored response
        // (`Handshake::Listener`). It ignores packets not addressed to its
        // socket id, and a caller's conclusion is addressed to 0.
        if let Some(&id) = self.by_peer.get(&(from, handshake.socket_id)) {
            let mut canonical = BytesMut::from(handshake.canonical(datagram));
            if let Some(dest) = canonical.get_mut(12..16) {
                dest.copy_from_slice(&id.0.to_be_bytes());
            }
            return self.feed(now, id, from, canonical.freeze());
        }
        if !self
            .cookies
            .verify(now, from, handshake.socket_id, handshake.cookie)
        {
            return self.discard("bad_cookie");
        }
        match self.admit(from, &handshake) {
            Ok(accepted) => self.conclude(now, from, datagram, &handshake, accepted),
            Err(rejection) => self.reject(from, datagram, &handshake, rejection),
        }
    }

    /// Transport checks, then access control.
    fn admit(&self, from: SocketAddr, handshake: &Handshake) -> Result<Accepted, Rejection> {
        if let Some(feature) = handshake.unsupported {
            return Err(match feature {
                Unsupported::Congestion => Rejection::new(
                    RejectCode::Congestion,
                    "only the live congestion controller is served: drop the caller's `congestion` option",
                ),
                Unsupported::PacketFilter => Rejection::new(
                    RejectCode::Filter,
                    "packet filters (FEC) are not served: drop the caller's `packetfilter` option",
                ),
                Unsupported::Group => Rejection::new(
                    RejectCode::Group,
                    "bonding (socket groups) is not served: connect a single socket",
                ),
            });
        }
        let max_latency_ms =
            u16::try_from(self.settings.max_latency.as_millis()).unwrap_or(u16::MAX);
        if handshake.max_latency_ms > max_latency_ms {
            return Err(Rejection::new(
                RejectCode::Unacceptable,
                format!(
                    "latency {} ms is above the listener's maximum of {max_latency_ms} ms",
                    handshake.max_latency_ms
                ),
            ));
        }
        if self.conns.len() >= self.settings.max_connections {
            return Err(Rejection::new(
                RejectCode::Backlog,
                format!(
                    "the listener has its maximum of {} connections ([srt] max_connections)",
                    self.settings.max_connections
                ),
            ));
        }
        let from_ip = self.per_ip.get(&from.ip()).copied().unwrap_or(0);
        if from_ip >= self.settings.max_connections_per_ip {
            return Err(Rejection::new(
                RejectCode::Backlog,
                format!(
                    "{} already has the maximum of {} connections per address",
                    from.ip(),
                    self.settings.max_connections_per_ip
                ),
            ));
        }
        let caller = Caller {
            stream_id: handshake.stream_id.as_deref(),
            key_material: handshake.key_material,
        };
        match admission::admit(&self.config, caller, |stream| self.publishers(stream)) {
            Admission::Accept(accepted) => Ok(accepted),
            Admission::Reject(rejection) => Err(rejection),
        }
    }

    /// Answers a refused conclusion with a rejection handshake, built by
    /// hand: the caller's fixed CIF with the reject code as handshake type.
    fn reject(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        handshake: &Handshake,
        rejection: Rejection,
    ) {
        let reply = rejection_reply(datagram, handshake, self.listener_id, rejection.code.wire());
        self.transmits.push_back((from, reply));
        self.counters.rejected += 1;
        self.events.push_back(Event::Rejected {
            peer: from,
            stream_id: handshake.stream_id.clone(),
            rejection,
        });
    }

    fn fresh_socket_id(&mut self) -> u32 {
        loop {
            self.id_counter += 1;
            let mut h = SipHasher13::new_with_key(&self.id_key);
            h.write_u8(b'i');
            h.write_u64(self.id_counter);
            // libsrt's ids are 30-bit (the top bits are flags elsewhere).
            let id = (h.finish() as u32) & 0x3FFF_FFFF;
            if id != 0 && id != self.listener_id && !self.conns.contains_key(&ConnId(id)) {
                return id;
            }
        }
    }

    fn conclude(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        handshake: &Handshake,
        accepted: Accepted,
    ) {
        let canonical = handshake.canonical(datagram);
        let local_id = self.fresh_socket_id();
        let init = ConnInitSettings {
            local_sockid: SocketId(local_id),
            key_settings: None,
            send_latency: self.settings.latency,
            recv_latency: self.settings.latency,
            peer_idle_timeout: self.settings.idle_timeout,
            ..ConnInitSettings::default()
        };
        let key_settings = match &accepted.encryption {
            None => None,
            Some(e) => {
                let passphrase = Passphrase::try_from(e.passphrase.expose().to_string());
                let key_size = KeySize::try_from(u16::from(e.key_len));
                match (passphrase, key_size) {
                    (Ok(passphrase), Ok(key_size)) => Some(KeySettings {
                        key_size,
                        passphrase,
                    }),
                    // Both were checked (config, gate): unreachable, but not
                    // worth a panic on the network path.
                    _ => {
                        let rejection = Rejection::new(RejectCode::Crypto, "unusable key settings");
                        return self.reject(from, datagram, handshake, rejection);
                    }
                }
            }
        };
        let ipv6 = self.settings.ipv6;
        let caller_cookie = handshake.cookie;
        let ran = catch_unwind(AssertUnwindSafe(|| {
            listen_dance(
                now,
                from,
                canonical,
                ipv6,
                init,
                caller_cookie,
                key_settings,
            )
        }));
        match ran {
            Ok(Some(Concluded::Connected { reply, machine })) => {
                self.transmits.extend(reply);
                self.admitted(now, from, handshake, accepted, local_id, *machine);
            }
            Ok(Some(Concluded::Rejected { reply, reason })) => {
                self.transmits.extend(reply);
                self.counters.rejected += 1;
                let code = match reason {
                    RejectReason::Core(srt_protocol::packet::CoreRejectReason::BadSecret) => {
                        RejectCode::BadSecret
                    }
                    RejectReason::Core(srt_protocol::packet::CoreRejectReason::Unsecure) => {
                        RejectCode::Unsecure
                    }
                    other => RejectCode::Protocol(i32::from(other)),
                };
                self.events.push_back(Event::Rejected {
                    peer: from,
                    stream_id: handshake.stream_id.clone(),
                    rejection: Rejection::new(
                        code,
                        format!(
                            "the key exchange failed ({reason}): check the caller's passphrase"
                        ),
                    ),
                });
            }
            Ok(None) => self.discard("unparsable"),
            Err(_) => {
                self.counters.panics += 1;
                self.discard("unparsable");
            }
        }
    }

    fn admitted(
        &mut self,
        now: Instant,
        from: SocketAddr,
        handshake: &Handshake,
        accepted: Accepted,
        local_id: u32,
        machine: DuplexConnection,
    ) {
        let id = ConnId(local_id);
        let stream = accepted.stream.clone();
        if accepted.role == Role::Takeover
            && let Some(old) = self.slots.get(&stream).and_then(|s| s.main)
        {
            self.shut_down(now, old, CloseReason::TakenOver);
        }
        let slots = self.slots.entry(stream.clone()).or_default();
        match accepted.role {
            Role::Main | Role::Takeover => slots.main = Some(id),
            Role::Backup => slots.backup = Some(id),
            Role::Player => {}
        }
        if slots.main.is_none() && slots.backup.is_none() {
            self.slots.remove(&stream);
        }
        self.conns.insert(
            id,
            Conn {
                machine,
                peer: from,
                remote_socket_id: handshake.socket_id,
                stream: stream.clone(),
                role: accepted.role,
                deadline: now,
                accepted_at: now,
                heard_from_peer: false,
                rtt: None,
            },
        );
        self.by_peer.insert((from, handshake.socket_id), id);
        *self.per_ip.entry(from.ip()).or_default() += 1;
        self.counters.accepted += 1;
        self.events.push_back(Event::Connected {
            conn: id,
            peer: from,
            stream,
            role: accepted.role,
            user: accepted.user,
            key_len: accepted.encryption.as_ref().map(|e| e.key_len),
        });
        self.drive(now, id, Input::Timer);
    }
}

fn serialize(packet: &Packet) -> Bytes {
    let mut out = BytesMut::with_capacity(1500);
    packet.serialize(&mut out);
    out.freeze()
}

/// Runs srt-protocol's `Listen` on a canonical conclusion (see the module
/// docs). Called inside the unwind boundary; `None` when srt-protocol does
/// not conclude (it should always, after the gate).
fn listen_dance(
    now: Instant,
    from: SocketAddr,
    canonical: Bytes,
    ipv6: bool,
    init: ConnInitSettings,
    caller_cookie: i32,
    key_settings: Option<KeySettings>,
) -> Option<Concluded> {
    let Ok(Packet::Control(control)) = Packet::parse(&mut canonical.clone(), ipv6) else {
        return None;
    };
    let ControlTypes::Handshake(conclusion) = control.control_type.clone() else {
        return None;
    };
    let mut listen = Listen::new(init, true);
    let induction = ControlPacket {
        timestamp: control.timestamp,
        dest_sockid: SocketId(0),
        control_type: ControlTypes::Handshake(HandshakeControlInfo {
            shake_type: ShakeType::Induction,
            syn_cookie: 0,
            info: HandshakeVsInfo::V5(HsV5Info::default()),
            ..conclusion.clone()
        }),
    };
    let listen_cookie = match listen.handle_packet(now, Ok((induction.into(), from))) {
        ConnectionResult::SendPacket((
            Packet::Control(ControlPacket {
                control_type: ControlTypes::Handshake(reply),
                ..
            }),
            _,
        )) => reply.syn_cookie,
        _ => return None,
    };
    let conclusion = ControlPacket {
        control_type: ControlTypes::Handshake(HandshakeControlInfo {
            syn_cookie: listen_cookie,
            ..conclusion
        }),
        ..control
    };
    if !matches!(
        listen.handle_packet(now, Ok((conclusion.into(), from))),
        ConnectionResult::RequestAccess(_)
    ) {
        return None;
    }
    // The caller must see its own cookie (ours) in every answer, including
    // the ones the connection sends again for retransmitted conclusions.
    let with_our_cookie = |control: &mut ControlTypes| {
        if let ControlTypes::Handshake(h) = control {
            h.syn_cookie = caller_cookie;
        }
    };
    let finish = |reply: Option<(Packet, SocketAddr)>| {
        reply.map(|(mut packet, to)| {
            if let Packet::Control(c) = &mut packet {
                with_our_cookie(&mut c.control_type);
            }
            (to, serialize(&packet))
        })
    };
    match listen.handle_access_control_response(now, AccessControlResponse::Accepted(key_settings))
    {
        ConnectionResult::Connected(reply, mut connection) => {
            if let ConnectionHandshake::Listener(stored) = &mut connection.handshake {
                with_our_cookie(stored);
            }
            Some(Concluded::Connected {
                reply: finish(reply),
                machine: Box::new(DuplexConnection::new(connection)),
            })
        }
        ConnectionResult::Reject(reply, reason) => Some(Concluded::Rejected {
            reply: finish(reply),
            reason: match reason {
                ConnectionReject::Rejecting(r) | ConnectionReject::Rejected(r) => r,
            },
        }),
        _ => None,
    }
}

/// Our answer to an induction (SRT RFC draft §4.3.1.1), built by hand: no
/// srt-protocol code runs for inductions, so their floods cost a few
/// hundred nanoseconds and no state. Version 5, encryption field 0 (the
/// stream, and so its key, is known only from the conclusion), the SRT
/// magic 0x4A17 in the extension field, our socket id and cookie, the
/// caller's sequence number, MSS and flow window echoed.
fn induction_reply(
    request: &[u8],
    handshake: &Handshake,
    listener_id: u32,
    cookie: i32,
    from: SocketAddr,
) -> Bytes {
    let field = |at: usize| request.get(at..at + 4).unwrap_or(&[0; 4]);
    let mut out = BytesMut::with_capacity(gate::HANDSHAKE_LEN);
    out.put_u32(0x8000_0000);
    out.put_u32(0);
    out.put_slice(field(8)); // timestamp echoed
    out.put_u32(handshake.socket_id);
    out.put_u32(5);
    out.put_u16(0);
    out.put_u16(0x4A17);
    out.put_slice(field(gate::HEADER_LEN + 8)); // initial sequence number
    out.put_slice(field(gate::HEADER_LEN + 12)); // MSS
    out.put_slice(field(gate::HEADER_LEN + 16)); // flow window
    out.put_i32(gate::HANDSHAKE_INDUCTION);
    out.put_u32(listener_id);
    out.put_i32(cookie);
    put_peer_ip(&mut out, from.ip());
    out.freeze()
}

/// A rejection (SRT RFC draft §4.3.1.2 "rejection"): the caller's fixed CIF,
/// HSv5 with no extensions, the reject code as handshake type.
fn rejection_reply(request: &[u8], handshake: &Handshake, listener_id: u32, code: i32) -> Bytes {
    let field = |at: usize| request.get(at..at + 4).unwrap_or(&[0; 4]);
    let mut out = BytesMut::with_capacity(gate::HANDSHAKE_LEN);
    out.put_u32(0x8000_0000);
    out.put_u32(0);
    out.put_slice(field(8));
    out.put_u32(handshake.socket_id);
    out.put_u32(5);
    out.put_u32(0);
    out.put_slice(field(gate::HEADER_LEN + 8));
    out.put_slice(field(gate::HEADER_LEN + 12));
    out.put_slice(field(gate::HEADER_LEN + 16));
    out.put_i32(code);
    out.put_u32(listener_id);
    out.put_i32(handshake.cookie);
    out.put_slice(
        request
            .get(gate::HEADER_LEN + 32..gate::HANDSHAKE_LEN)
            .unwrap_or(&[0; 16]),
    );
    out.freeze()
}

/// The handshake's peer IP field: IPv4 as a little-endian word then 12
/// zero bytes, as libsrt (and srt-protocol) write it; IPv6 as 16 bytes.
fn put_peer_ip(out: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.put_u32_le(u32::from(v4));
            out.put_bytes(0, 12);
        }
        IpAddr::V6(v6) => out.put_slice(&v6.octets()),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests;
