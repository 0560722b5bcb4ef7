//! One SRT caller session, sans-IO: the caller side of the handshake (SRT
//! RFC draft draft-sharabayko-srt-01 §4.3.1.1, caller-listener: induction,
//! then conclusion) and the data transfer of a live sender (§4.5), over the
//! srt-protocol 0.4.4 state machines `pending_connection::connect::Connect`
//! and `connection::DuplexConnection`.
//!
//! The shell feeds received datagrams ([`SrtCaller::handle_datagram`]),
//! wake-ups ([`SrtCaller::handle_timeout`]) and messages to send
//! ([`SrtCaller::send`]), all with the current time, and drains
//! [`SrtCaller::poll_transmit`] and [`SrtCaller::poll_event`]. No socket, no
//! clock, no randomness (the socket id and initial sequence number are
//! given): a session is a deterministic function of its inputs.
//!
//! The peer is a listener we chose, but it is still the network, and
//! srt-protocol 0.4.4 has remote-triggerable panics and hangs (the panic
//! table, `docs/srt-ingest-notes.md` §2). The same two defences as the
//! ingest endpoint apply:
//!
//! 1. Before any byte reaches `Packet::parse`: data packets are dropped (a
//!    pure sender receives none), handshakes are only parsed while
//!    handshaking, and established control packets pass the ingest
//!    [`gate::check_established_control`] (congestion warnings and peer
//!    errors P7/P8, unknown 0x7FFF subtypes P5/P6/P9, NAK loss lists that
//!    panic or walk 2³² numbers P10/P19, drop requests P21).
//! 2. Every srt-protocol call, serialisation included, runs under
//!    `catch_unwind`. A panic ends the session for good
//!    ([`SessionError::Panicked`]): the state machine is dropped and never
//!    touched again, which is what makes `AssertUnwindSafe` sound; outputs
//!    of the call are collected in locals, so nothing shared is left
//!    half-updated.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use srt_protocol::connection::{Action, DuplexConnection, Input};
use srt_protocol::packet::{ControlPacket, ControlTypes, Packet, SeqNumber, SocketId, TimeStamp};
use srt_protocol::protocol::pending_connection::connect::Connect;
use srt_protocol::protocol::pending_connection::{ConnectionReject, ConnectionResult};
use srt_protocol::settings::{ConnInitSettings, KeySettings, KeySize, Passphrase};

use crate::config::AesKeyLength;
use crate::ingest::srt::gate::{self, Kind};

/// How often an unanswered induction or conclusion is sent again (libsrt
/// repeats its handshake every 250 ms).
pub const HANDSHAKE_RESEND: Duration = Duration::from_millis(250);

/// Most srt-protocol actions handled per call, so a confused state machine
/// cannot spin the task forever.
const MAX_ACTIONS_PER_CALL: usize = 4096;

/// The longest a session is left alone whatever srt-protocol asks
/// (`Instant + Duration` must not overflow).
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The largest SRT message of a live TS sender: 7 TS packets, libsrt's
/// default payload size (SRTO_PAYLOADSIZE 1316).
pub const MAX_MESSAGE_LEN: usize = 1316;

/// What a session needs to know.
#[derive(Debug, Clone)]
pub struct CallerSettings {
    /// The listener (already resolved).
    pub peer: SocketAddr,
    /// Our address as the peer sees it (the handshake's peer IP field).
    pub local_ip: IpAddr,
    /// Sent in the conclusion's SID extension (§3.2.1.3).
    pub stream_id: Option<String>,
    /// Passphrase and AES key length; `None` for an unencrypted session.
    pub encryption: Option<(String, AesKeyLength)>,
    /// TSBPD latency we ask for (both directions); `None` = SRT's 120 ms.
    pub latency: Option<Duration>,
    /// A handshake not concluded in this time fails the session.
    pub handshake_timeout: Duration,
    /// A connected session that hears nothing from the peer for this long
    /// fails (srt-protocol's peer idle timeout, and ours as a backstop).
    pub idle_timeout: Duration,
    /// Our SRT socket id (random, non-zero, 30 bits like libsrt's).
    pub socket_id: u32,
    /// Our first data sequence number (random, 31 bits).
    pub initial_sequence: u32,
}

/// Why a session ended (or could not start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(
        "the SRT passphrase or key length cannot be used: {0} (a passphrase has 10 to 79 characters)"
    )]
    KeySettings(String),
    #[error("no handshake answer from {peer} within {timeout:?}{}", last.as_ref().map(|l| format!(" (last problem: {l})")).unwrap_or_default())]
    HandshakeTimeout {
        peer: SocketAddr,
        timeout: Duration,
        last: Option<String>,
    },
    #[error("the listener rejected the connection: {reason} (reject code {code}){}", reject_hint(*.code))]
    Rejected { code: i32, reason: String },
    #[error("the handshake failed: {0}")]
    Handshake(String),
    #[error("the listener sent nothing for {0:?}")]
    IdleTimeout(Duration),
    #[error("the listener closed the connection")]
    PeerShutdown,
    #[error("the connection closed")]
    Closed,
    #[error("srt-protocol panicked on the connection (contained; the session was discarded)")]
    Panicked,
}

/// What a reject code asks the operator to check.
fn reject_hint(code: i32) -> &'static str {
    match code {
        1010 => ": check that the passphrase matches the listener's",
        1011 => {
            ": the listener and this output disagree on encryption (set or remove `passphrase`)"
        }
        2401 | 2403 => ": the listener refused this streamid or user",
        2404 => ": the listener does not know this streamid",
        2409 => ": the listener already has a publisher on this streamid",
        _ => "",
    }
}

/// What happened to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerEvent {
    /// The handshake concluded; data may be sent.
    Connected {
        /// Negotiated TSBPD latency of our sending direction.
        latency: Duration,
        /// Negotiated payload size.
        max_payload: usize,
    },
    /// The session is over: `Ok` after a [`SrtCaller::close`] completed.
    Closed(Result<(), SessionError>),
}

/// Sender counters of a connected session (SRT packets, not TS packets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub packets: u64,
    pub bytes: u64,
    pub retransmitted: u64,
    /// Packets srt-protocol dropped as too late to be played (TLPKTDROP).
    pub dropped: u64,
    /// Datagrams we discarded before parsing (gate, wrong socket id).
    pub discarded: u64,
}

enum State {
    Handshaking {
        connect: Box<Connect>,
        started: Instant,
        resend_at: Instant,
        last_problem: Option<String>,
    },
    Connected {
        machine: Box<DuplexConnection>,
        wake_at: Instant,
        last_heard: Instant,
        closing: bool,
        /// A close was asked for: it starts at this time (see
        /// [`SrtCaller::close`]).
        linger_until: Option<Instant>,
        peer_shutdown: bool,
    },
    Closed,
}

/// Added to the peer's latency before a graceful close begins: its
/// acknowledgement interval (10 ms) and then some.
const CLOSE_LINGER_MARGIN: Duration = Duration::from_millis(50);

/// One caller session (see the module docs for the contract).
pub struct SrtCaller {
    settings: CallerSettings,
    state: State,
    transmits: VecDeque<Bytes>,
    events: VecDeque<CallerEvent>,
    discarded: u64,
}

impl std::fmt::Debug for SrtCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Handshaking { .. } => "handshaking",
            State::Connected { .. } => "connected",
            State::Closed => "closed",
        };
        f.debug_struct("SrtCaller")
            .field("peer", &self.settings.peer)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

fn serialize(packet: &Packet) -> Bytes {
    let mut out = BytesMut::with_capacity(1500);
    packet.serialize(&mut out);
    out.freeze()
}

impl SrtCaller {
    /// Starts the handshake: the induction is ready in
    /// [`SrtCaller::poll_transmit`].
    pub fn new(now: Instant, settings: CallerSettings) -> Result<SrtCaller, SessionError> {
        let key_settings = match &settings.encryption {
            None => None,
            Some((passphrase, length)) => {
                let passphrase = Passphrase::try_from(passphrase.clone())
                    .map_err(|e| SessionError::KeySettings(e.to_string()))?;
                let key_size = KeySize::try_from(u16::from(length.bytes()))
                    .map_err(|e| SessionError::KeySettings(e.to_string()))?;
                Some(KeySettings {
                    key_size,
                    passphrase,
                })
            }
        };
        let mut caller = SrtCaller {
            state: State::Closed,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            discarded: 0,
            settings,
        };
        let s = &caller.settings;
        let (peer, local_ip, stream_id) = (s.peer, s.local_ip, s.stream_id.clone());
        let (latency, idle, socket_id, seq) =
            (s.latency, s.idle_timeout, s.socket_id, s.initial_sequence);
        let started = catch_unwind(AssertUnwindSafe(|| {
            let defaults = ConnInitSettings::default();
            let init = ConnInitSettings {
                local_sockid: SocketId(socket_id),
                key_settings,
                send_latency: latency.unwrap_or(defaults.send_latency),
                recv_latency: latency.unwrap_or(defaults.recv_latency),
                peer_idle_timeout: idle,
                ..defaults
            };
            let mut connect = Connect::new(
                peer,
                local_ip,
                init,
                stream_id,
                SeqNumber::new_truncate(seq),
            );
            let first = match connect.handle_tick(now) {
                ConnectionResult::SendPacket((packet, _)) => Some(serialize(&packet)),
                _ => None,
            };
            (Box::new(connect), first)
        }));
        match started {
            Ok((connect, first)) => {
                caller.transmits.extend(first);
                caller.state = State::Handshaking {
                    connect,
                    started: now,
                    resend_at: now + HANDSHAKE_RESEND,
                    last_problem: None,
                };
                Ok(caller)
            }
            Err(_) => Err(SessionError::Panicked),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected { closing: false, .. })
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// A datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<CallerEvent> {
        self.events.pop_front()
    }

    /// When [`SrtCaller::handle_timeout`] must run next; `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Handshaking {
                started, resend_at, ..
            } => Some((*resend_at).min(*started + self.settings.handshake_timeout)),
            State::Connected {
                wake_at,
                last_heard,
                linger_until,
                ..
            } => {
                let at = (*wake_at).min(*last_heard + self.backstop_idle());
                Some(linger_until.map_or(at, |linger| at.min(linger)))
            }
            State::Closed => None,
        }
    }

    /// Our own idle limit, a little after srt-protocol's, in case its
    /// timer does not fire.
    fn backstop_idle(&self) -> Duration {
        self.settings.idle_timeout + Duration::from_secs(1)
    }

    pub fn stats(&self) -> SenderStats {
        let mut stats = SenderStats {
            discarded: self.discarded,
            ..SenderStats::default()
        };
        if let State::Connected { machine, .. } = &self.state {
            let s = machine.statistics();
            stats.packets = s.tx_data;
            stats.bytes = s.tx_bytes;
            stats.retransmitted = s.tx_retransmit_data;
            stats.dropped = s.tx_dropped_data;
        }
        stats
    }

    fn end(&mut self, result: Result<(), SessionError>) {
        self.state = State::Closed;
        self.events.push_back(CallerEvent::Closed(result));
    }

    /// Takes one datagram received from the peer (the shell's socket is
    /// connected to it, so nothing else arrives).
    pub fn handle_datagram(&mut self, now: Instant, datagram: Bytes) {
        let Ok(kind) = Kind::read(&datagram) else {
            self.discarded += 1;
            return;
        };
        let handshaking = matches!(self.state, State::Handshaking { .. });
        match kind {
            Kind::Control { ty, .. } if ty == gate::control_type::HANDSHAKE && handshaking => {}
            Kind::Control { ty, subtype, dest } if !handshaking => {
                let ours = dest == self.settings.socket_id;
                if !ours || gate::check_established_control(&datagram, ty, subtype).is_err() {
                    self.discarded += 1;
                    return;
                }
                if let State::Connected {
                    last_heard,
                    peer_shutdown,
                    ..
                } = &mut self.state
                {
                    *last_heard = now;
                    *peer_shutdown |= ty == gate::control_type::SHUTDOWN;
                }
            }
            _ => {
                self.discarded += 1;
                return;
            }
        }
        let ipv6 = self.settings.peer.is_ipv6();
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            Packet::parse(&mut datagram.clone(), ipv6)
        }));
        let packet = match parsed {
            Ok(Ok(packet)) => packet,
            Ok(Err(_)) => {
                self.discarded += 1;
                return;
            }
            // The parser keeps no state: only this datagram is lost.
            Err(_) => {
                self.discarded += 1;
                return;
            }
        };
        let from = self.settings.peer;
        match &mut self.state {
            State::Handshaking { .. } => self.handshake_packet(now, packet),
            State::Connected { .. } => self.drive(now, Input::Packet(Ok((packet, from)))),
            State::Closed => {}
        }
    }

    fn handshake_packet(&mut self, now: Instant, packet: Packet) {
        let State::Handshaking { connect, .. } = &mut self.state else {
            return;
        };
        let from = self.settings.peer;
        let result = catch_unwind(AssertUnwindSafe(|| {
            match connect.handle_packet(Ok((packet, from)), now) {
                ConnectionResult::SendPacket((packet, _)) => Step::Send(serialize(&packet)),
                ConnectionResult::Connected(reply, connection) => Step::Connected(
                    reply.map(|(p, _)| serialize(&p)),
                    Box::new(DuplexConnection::new(connection)),
                ),
                ConnectionResult::Reject(_, reject) => {
                    let reason = match reject {
                        ConnectionReject::Rejected(r) | ConnectionReject::Rejecting(r) => r,
                    };
                    Step::Rejected {
                        code: i32::from(reason),
                        reason: reason.to_string(),
                    }
                }
                ConnectionResult::NotHandled(e) => Step::Problem(e.to_string()),
                ConnectionResult::Failure(e) => Step::Failed(e.to_string()),
                ConnectionResult::NoAction | ConnectionResult::RequestAccess(_) => Step::Nothing,
            }
        }));
        match result {
            Err(_) => self.end(Err(SessionError::Panicked)),
            Ok(Step::Nothing) => {}
            Ok(Step::Send(datagram)) => {
                self.transmits.push_back(datagram);
                if let State::Handshaking { resend_at, .. } = &mut self.state {
                    *resend_at = now + HANDSHAKE_RESEND;
                }
            }
            Ok(Step::Problem(problem)) => {
                if let State::Handshaking { last_problem, .. } = &mut self.state {
                    *last_problem = Some(problem);
                }
            }
            Ok(Step::Failed(error)) => self.end(Err(SessionError::Handshake(error))),
            Ok(Step::Rejected { code, reason }) => {
                self.end(Err(SessionError::Rejected { code, reason }));
            }
            Ok(Step::Connected(reply, machine)) => {
                self.transmits.extend(reply);
                let settings = machine.settings();
                self.events.push_back(CallerEvent::Connected {
                    latency: settings.send_tsbpd_latency,
                    max_payload: usize::try_from(settings.max_packet_size.0).unwrap_or(0),
                });
                self.state = State::Connected {
                    machine,
                    wake_at: now,
                    last_heard: now,
                    closing: false,
                    linger_until: None,
                    peer_shutdown: false,
                };
                self.drive(now, Input::Timer);
            }
        }
    }

    /// Drives the session's timers: handshake resends and timeout,
    /// srt-protocol's timers (ACK, NAK, keepalive, sending pace, idle).
    pub fn handle_timeout(&mut self, now: Instant) {
        let backstop_idle = self.backstop_idle();
        match &mut self.state {
            State::Handshaking {
                connect,
                started,
                resend_at,
                last_problem,
            } => {
                if now >= *started + self.settings.handshake_timeout {
                    let error = SessionError::HandshakeTimeout {
                        peer: self.settings.peer,
                        timeout: self.settings.handshake_timeout,
                        last: last_problem.take(),
                    };
                    return self.end(Err(error));
                }
                if now < *resend_at {
                    return;
                }
                *resend_at = now + HANDSHAKE_RESEND;
                let resent = catch_unwind(AssertUnwindSafe(|| match connect.handle_tick(now) {
                    ConnectionResult::SendPacket((packet, _)) => Some(serialize(&packet)),
                    _ => None,
                }));
                match resent {
                    Ok(datagram) => self.transmits.extend(datagram),
                    Err(_) => self.end(Err(SessionError::Panicked)),
                }
            }
            State::Connected {
                last_heard,
                linger_until,
                closing,
                ..
            } => {
                if now >= *last_heard + backstop_idle {
                    let idle = self.settings.idle_timeout;
                    return self.end(Err(SessionError::IdleTimeout(idle)));
                }
                if linger_until.is_some_and(|linger| now >= linger) && !*closing {
                    *linger_until = None;
                    *closing = true;
                    return self.drive(now, Input::Data(None));
                }
                self.drive(now, Input::Timer);
            }
            State::Closed => {}
        }
    }

    /// Queues one message (at most [`MAX_MESSAGE_LEN`] bytes; srt-protocol
    /// splits longer ones) with `now` as its source time. Ignored unless
    /// connected: before that, the caller has nowhere to send it.
    pub fn send(&mut self, now: Instant, message: Bytes) -> bool {
        if !self.is_connected() {
            return false;
        }
        self.drive(now, Input::Data(Some((now, message))));
        true
    }

    /// Graceful close: after the peer's TSBPD latency, srt-protocol sends
    /// what it holds, then a shutdown, and the session ends with
    /// `Closed(Ok(()))`. While handshaking the session just ends.
    ///
    /// The wait matters: a libsrt receiver drops what its TSBPD buffer
    /// still holds when the shutdown arrives, so closing at once would cut
    /// the last ~latency of the stream (measured: the last 6 packets with
    /// srt-live-transmit at 120 ms).
    pub fn close(&mut self, now: Instant) {
        match &mut self.state {
            State::Handshaking { .. } => self.end(Ok(())),
            State::Connected {
                machine,
                closing,
                linger_until,
                ..
            } => {
                if !*closing && linger_until.is_none() {
                    let latency = machine.settings().send_tsbpd_latency;
                    *linger_until = Some(now + latency + CLOSE_LINGER_MARGIN);
                }
            }
            State::Closed => {}
        }
    }

    /// Ends the session at once, queueing a shutdown packet (§3.2.7) for
    /// the peer when connected: for a close that did not complete in time.
    pub fn abort(&mut self, now: Instant) {
        if let State::Connected { machine, .. } = &self.state {
            let settings = machine.settings();
            let elapsed = now.saturating_duration_since(settings.socket_start_time);
            // SRT timestamps are 32-bit microseconds that wrap (§3).
            let micros = (elapsed.as_micros() & u128::from(u32::MAX)) as u32;
            let shutdown = Packet::Control(ControlPacket {
                timestamp: TimeStamp::from_micros(micros),
                dest_sockid: settings.remote_sockid,
                control_type: ControlTypes::Shutdown,
            });
            if let Ok(datagram) = catch_unwind(AssertUnwindSafe(|| serialize(&shutdown))) {
                self.transmits.push_back(datagram);
            }
        }
        if !self.is_closed() {
            self.end(Ok(()));
        }
    }

    /// Runs the connection on `input` until it waits, under the unwind
    /// boundary.
    fn drive(&mut self, now: Instant, input: Input) {
        let State::Connected {
            machine,
            wake_at,
            closing,
            peer_shutdown,
            last_heard,
            ..
        } = &mut self.state
        else {
            return;
        };
        let mut out = Vec::new();
        let mut closed = false;
        let mut deadline = now;
        let ran = catch_unwind(AssertUnwindSafe(|| {
            let mut input = input;
            for _ in 0..MAX_ACTIONS_PER_CALL {
                match machine.handle_input(now, input) {
                    Action::SendPacket((packet, _)) => {
                        out.push(serialize(&packet));
                        input = Input::PacketSent;
                    }
                    // A live sender's peer sends no data; srt-protocol
                    // would release it if it did.
                    Action::ReleaseData(_) => input = Input::DataReleased,
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
            // Limit reached: come back at once.
        }));
        self.transmits.extend(out);
        match ran {
            Err(_) => self.end(Err(SessionError::Panicked)),
            Ok(()) if closed => {
                let result = if *closing {
                    Ok(())
                } else if *peer_shutdown {
                    Err(SessionError::PeerShutdown)
                } else if now.saturating_duration_since(*last_heard) >= self.settings.idle_timeout {
                    Err(SessionError::IdleTimeout(self.settings.idle_timeout))
                } else {
                    Err(SessionError::Closed)
                };
                self.end(result);
            }
            Ok(()) => *wake_at = deadline,
        }
    }
}

/// The outcome of one handshake call, computed inside the unwind boundary.
enum Step {
    Nothing,
    Send(Bytes),
    Connected(Option<Bytes>, Box<DuplexConnection>),
    Rejected { code: i32, reason: String },
    Problem(String),
    Failed(String),
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    //! [`SrtCaller`] against switchyard's own SRT listener core
    //! ([`crate::ingest::srt::Endpoint`]) in memory, with simulated time:
    //! handshake, data, encryption, rejection, close, idle timeout, and
    //! hostile datagrams from the peer.

    use std::sync::Arc;

    use bytes::BufMut;

    use super::*;
    use crate::ingest::srt::{Endpoint, EndpointSettings, Event};

    const SECRET: &str = "0123456789abcdef";
    const CONFIG: &str = r#"
[srt]
accept_any_stream = false

[[stream]]
id = "out/cam1"

[[stream]]
id = "out/secret"
passphrase = "0123456789abcdef"
"#;

    type Encryption = (String, AesKeyLength);

    fn listener_addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], 9000))
    }

    fn caller_addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 2], 50_000))
    }

    fn settings(stream_id: &str, encryption: Option<(String, AesKeyLength)>) -> CallerSettings {
        CallerSettings {
            peer: listener_addr(),
            local_ip: caller_addr().ip(),
            stream_id: Some(stream_id.to_string()),
            encryption,
            latency: Some(Duration::from_millis(120)),
            handshake_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            socket_id: 0x1234_5678,
            initial_sequence: 777,
        }
    }

    /// The two sides and a lossless wire between them.
    struct Net {
        now: Instant,
        caller: SrtCaller,
        listener: Endpoint,
        received: Vec<u8>,
        events: Vec<CallerEvent>,
        listener_events: Vec<Event>,
        /// Deliver listener datagrams to the caller.
        wire_up: bool,
    }

    impl Net {
        fn new(settings: CallerSettings) -> Net {
            let now = Instant::now();
            let config = Arc::new(crate::config::parse(CONFIG, "t.toml").expect("config"));
            let endpoint_settings = EndpointSettings::from_config(&config);
            Net {
                now,
                caller: SrtCaller::new(now, settings).expect("valid settings"),
                listener: Endpoint::new(now, config, endpoint_settings, *b"switchyard-tests"),
                received: Vec::new(),
                events: Vec::new(),
                listener_events: Vec::new(),
                wire_up: true,
            }
        }

        /// Moves every queued datagram and event until both sides are idle.
        fn settle(&mut self) {
            loop {
                let mut moved = false;
                while let Some(d) = self.caller.poll_transmit() {
                    moved = true;
                    self.listener.handle_datagram(self.now, caller_addr(), d);
                }
                while let Some((to, d)) = self.listener.poll_transmit() {
                    assert_eq!(to, caller_addr());
                    moved = true;
                    if self.wire_up {
                        self.caller.handle_datagram(self.now, d);
                    }
                }
                while let Some(e) = self.listener.poll_event() {
                    if let Event::Data { data, .. } = &e {
                        self.received.extend_from_slice(data);
                    }
                    self.listener_events.push(e);
                }
                while let Some(e) = self.caller.poll_event() {
                    self.events.push(e);
                }
                if !moved {
                    return;
                }
            }
        }

        /// Advances simulated time by `step` increments up to `total`,
        /// firing both sides' timers.
        fn run_for(&mut self, total: Duration) {
            let end = self.now + total;
            while self.now < end {
                self.settle();
                let next = [self.caller.poll_timeout(), self.listener.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(end)
                    .clamp(self.now + Duration::from_micros(100), end);
                self.now = next;
                if self.caller.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.caller.handle_timeout(self.now);
                }
                self.listener.handle_timeout(self.now);
            }
            self.settle();
        }

        fn connected(&self) -> bool {
            self.events
                .iter()
                .any(|e| matches!(e, CallerEvent::Connected { .. }))
        }

        fn closed(&self) -> Option<&Result<(), SessionError>> {
            self.events.iter().find_map(|e| match e {
                CallerEvent::Closed(r) => Some(r),
                CallerEvent::Connected { .. } => None,
            })
        }
    }

    /// `n` messages of 7 fake TS packets, each byte telling its position.
    fn messages(n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| {
                let mut m = BytesMut::with_capacity(MAX_MESSAGE_LEN);
                for p in 0..7u8 {
                    m.put_u8(0x47);
                    m.put_bytes((i as u8).wrapping_add(p), 187);
                }
                m.freeze()
            })
            .collect()
    }

    fn push_through(net: &mut Net, n: usize) -> Vec<u8> {
        let sent = messages(n);
        for (i, m) in sent.iter().enumerate() {
            assert!(net.caller.send(net.now, m.clone()), "message {i} refused");
            net.run_for(Duration::from_millis(2));
        }
        net.run_for(Duration::from_millis(500));
        sent.concat()
    }

    #[test]
    fn connects_and_delivers_every_message_in_order() {
        let mut net = Net::new(settings("out/cam1", None));
        net.run_for(Duration::from_millis(50));
        assert!(net.connected(), "events: {:?}", net.events);
        assert!(net.caller.is_connected());
        let sent = push_through(&mut net, 200);
        assert_eq!(net.received.len(), sent.len());
        assert!(net.received == sent, "payload differs");
        let stats = net.caller.stats();
        assert_eq!(stats.packets, 200);
        assert_eq!(stats.discarded, 0);
    }

    #[test]
    fn encrypted_session_with_each_key_length() {
        for length in [
            AesKeyLength::Aes128,
            AesKeyLength::Aes192,
            AesKeyLength::Aes256,
        ] {
            let mut net = Net::new(settings("out/secret", Some((SECRET.into(), length))));
            net.run_for(Duration::from_millis(50));
            assert!(net.connected(), "{length:?}: {:?}", net.events);
            let key_len = net.listener_events.iter().find_map(|e| match e {
                Event::Connected { key_len, .. } => Some(*key_len),
                _ => None,
            });
            assert_eq!(key_len, Some(Some(length.bytes())));
            let sent = push_through(&mut net, 20);
            assert!(net.received == sent, "{length:?}: payload differs");
        }
    }

    #[test]
    fn rejections_carry_the_code() {
        let cases: [(&str, Option<Encryption>, i32); 3] = [
            ("out/unknown", None, 2404),
            ("out/secret", None, 1011),
            (
                "out/secret",
                Some(("wrong-passphrase".into(), AesKeyLength::Aes128)),
                1010,
            ),
        ];
        for (id, encryption, code) in cases {
            let mut net = Net::new(settings(id, encryption));
            net.run_for(Duration::from_millis(50));
            match net.closed() {
                Some(Err(SessionError::Rejected { code: got, .. })) => {
                    assert_eq!(*got, code, "{id}");
                }
                other => panic!("{id}: expected a rejection {code}, got {other:?}"),
            }
            assert!(net.caller.is_closed());
            assert_eq!(net.caller.poll_timeout(), None);
        }
        let hint = SessionError::Rejected {
            code: 1010,
            reason: "x".into(),
        };
        assert!(hint.to_string().contains("passphrase"), "{hint}");
    }

    #[test]
    fn handshake_times_out_when_nobody_answers() {
        let mut net = Net::new(settings("out/cam1", None));
        net.wire_up = false;
        net.run_for(Duration::from_millis(2900));
        assert!(net.closed().is_none());
        net.run_for(Duration::from_millis(200));
        assert!(matches!(
            net.closed(),
            Some(Err(SessionError::HandshakeTimeout { .. }))
        ));
    }

    #[test]
    fn handshake_resent_every_250_ms() {
        let now = Instant::now();
        let mut caller = SrtCaller::new(now, settings("out/cam1", None)).expect("valid");
        assert!(caller.poll_transmit().is_some(), "induction at once");
        assert!(caller.poll_transmit().is_none());
        assert_eq!(caller.poll_timeout(), Some(now + HANDSHAKE_RESEND));
        caller.handle_timeout(now + Duration::from_millis(100));
        assert!(caller.poll_transmit().is_none());
        caller.handle_timeout(now + HANDSHAKE_RESEND);
        assert!(caller.poll_transmit().is_some(), "resent");
    }

    #[test]
    fn graceful_close_ends_ok_and_says_shutdown() {
        let mut net = Net::new(settings("out/cam1", None));
        net.run_for(Duration::from_millis(50));
        push_through(&mut net, 5);
        net.caller.close(net.now);
        net.run_for(Duration::from_secs(2));
        assert_eq!(net.closed(), Some(&Ok(())));
        assert!(
            net.listener_events
                .iter()
                .any(|e| matches!(e, Event::Closed { .. })),
            "the listener saw the shutdown: {:?}",
            net.listener_events
        );
    }

    #[test]
    fn abort_sends_a_shutdown_packet() {
        let mut net = Net::new(settings("out/cam1", None));
        net.run_for(Duration::from_millis(50));
        net.caller.abort(net.now);
        net.run_for(Duration::from_secs(1));
        assert_eq!(net.closed(), Some(&Ok(())));
        assert!(
            net.listener_events
                .iter()
                .any(|e| matches!(e, Event::Closed { .. })),
            "{:?}",
            net.listener_events
        );
    }

    #[test]
    fn silent_peer_times_out() {
        let mut net = Net::new(settings("out/cam1", None));
        net.run_for(Duration::from_millis(50));
        assert!(net.connected());
        net.wire_up = false;
        net.run_for(Duration::from_secs(7));
        assert!(
            matches!(net.closed(), Some(Err(SessionError::IdleTimeout(_)))),
            "{:?}",
            net.closed()
        );
    }

    #[test]
    fn invalid_key_settings_are_refused_up_front() {
        let e = SrtCaller::new(
            Instant::now(),
            settings("out/secret", Some(("short".into(), AesKeyLength::Aes128))),
        )
        .expect_err("a 5-character passphrase");
        assert!(matches!(e, SessionError::KeySettings(_)), "{e}");
    }

    /// Datagrams a hostile listener could send once connected: each of them
    /// reaches a panic or a hang in srt-protocol 0.4.4 if parsed and fed
    /// (panic table rows P7–P10, P19, P21), and must be discarded without
    /// hurting the session.
    #[test]
    fn hostile_control_packets_are_discarded() {
        let mut net = Net::new(settings("out/cam1", None));
        net.run_for(Duration::from_millis(50));
        let dest = 0x1234_5678u32;
        let control = |ty: u16, subtype: u16, body: &[u8]| {
            let mut d = BytesMut::new();
            d.put_u32(0x8000_0000 | (u32::from(ty) << 16) | u32::from(subtype));
            d.put_u32(0);
            d.put_u32(0);
            d.put_u32(dest);
            d.put_slice(body);
            d.freeze()
        };
        let hostile = [
            control(4, 0, &[]),                                   // P7 congestion warning
            control(8, 0, &[0, 0, 0, 1]),                         // P8 peer error
            control(0x7FFF, 5, &[]),                              // P5/P9
            control(0x7FFF, 8, &[]),                              // P6
            control(3, 0, &0x8000_0001u32.to_be_bytes()),         // P10 unterminated NAK
            control(3, 0, &[0x80, 0, 0, 9, 0, 0, 0, 9]),          // P19 range that wraps
            control(7, 0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]), // P21 drop request
            Bytes::from_static(&[1, 2, 3]),                       // short
            {
                // a data packet: a live sender receives none
                let mut d = BytesMut::new();
                d.put_u32(5);
                d.put_u32(0);
                d.put_u32(0);
                d.put_u32(dest);
                d.put_bytes(0, 188);
                d.freeze()
            },
        ];
        let count = hostile.len() as u64;
        for d in hostile {
            net.caller.handle_datagram(net.now, d);
        }
        assert_eq!(net.caller.stats().discarded, count);
        assert!(net.caller.is_connected());
        let sent = push_through(&mut net, 10);
        assert!(net.received == sent);
    }
}
