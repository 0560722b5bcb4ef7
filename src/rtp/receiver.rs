//! [`TsReceiver`]: MPEG-TS over RTP (RFC 2250 §2) in, transport stream
//! payloads out in sequence order, with reordering, loss, duplicate and
//! sender-change handling.
//!
//! # Contract (sans-IO)
//!
//! Time is a [`Duration`] since an arbitrary epoch chosen by the caller,
//! from a monotonic clock (the shell passes `Instant::now() - start`). The
//! receiver never reads a clock; every call takes `now`.
//!
//! 1. [`TsReceiver::push`] every datagram as it arrives.
//! 2. Then call [`TsReceiver::poll`] (or [`TsReceiver::poll_packet`]) until it
//!    returns `None`: payloads come out in sequence order.
//! 3. Arm a timer for [`TsReceiver::poll_timeout`] (`None`: no timer needed);
//!    when it fires, go to 2. A deadline at or before `now` means "poll now".
//!
//! Nothing is released from inside `push`; a `push` may make several
//! payloads ready at once (a full window, a sender change).
//!
//! # Policies
//!
//! - **Payload type.** Packets with another payload type than configured
//!   (33 by default, RFC 3551) are dropped and counted; this also drops RTCP
//!   sent to the RTP port.
//! - **Payload not a multiple of 188 bytes.** Passed on and counted
//!   ([`ReceiverStats::partial_payloads`]). RFC 2250 §2 asks for whole TS
//!   packets, but dropping such a payload would also drop the whole packets in
//!   it; the TS resync downstream skips the fragment and counts it.
//! - **Reordering.** Packets are held in a ring of `window` slots starting at
//!   the next sequence number to release. A gap at the head holds back what
//!   follows it until the gap is filled, or until a held packet has waited
//!   `max_delay` (then the gap is given up on: counted lost), or until a packet
//!   arrives `window` or more places ahead of the head (then just enough of
//!   the head is given up on to make room). So a lost packet delays the
//!   output by at most `max_delay`, and the receiver holds at most `window`
//!   packets.
//! - **Start.** The first packet to arrive need not be the first one sent, so
//!   a new stream starts as if there were a gap just before its first
//!   packet: output starts after `max_delay` or once `window` packets are in,
//!   whichever is first, and the slots skipped at the start are not counted
//!   lost. Every permutation within the window comes out in order.
//! - **Duplicates and late packets.** A packet whose sequence number is held
//!   or was released is a duplicate; one whose slot was given up on (or lies
//!   before the stream's start) is late. Both are dropped and counted, up to
//!   `max_misorder` places behind the head.
//! - **Sender change and sequence jumps (takeover).** A packet that does not
//!   fit the current stream, either from another SSRC or from this SSRC but
//!   `max_dropout` or more ahead of the head or more than `max_misorder`
//!   behind it (RFC 3550 Appendix A.1's limits), is held as a *challenger*
//!   (up to `window` packets of one candidate stream: same SSRC, sequence
//!   numbers close together). The challenger takes over when **both**
//!   (a) it has sent `takeover_packets` packets since the current stream's
//!   last packet, and (b) the current stream has sent nothing for
//!   `takeover_silence`. Then the current stream's held packets are released
//!   (gaps counted lost), the sequence state is reset, and the challenger's
//!   packets become the start of the new stream; it is counted as an SSRC
//!   change or, for the same SSRC, a resync. Rule (a) stops one stray
//!   packet; rule (b) stops a second sender on the same port from
//!   hijacking a live stream, however many packets it sends. A real change
//!   (an encoder restarted with a new SSRC or new numbering) meets both at
//!   once, since the old sender has stopped: the switch costs at most
//!   `takeover_silence` after the old sender's last packet, and the new
//!   sender's packets are held meanwhile rather than lost (beyond `window` of
//!   them the oldest are dropped). A forward jump below `max_dropout` is
//!   taken as loss: that many packets are counted lost. The very first packet
//!   is adopted at once, whatever its SSRC: should it be a stray, the real
//!   stream takes over from it by the same rule, `takeover_silence` later.
//!
//! # Accounting
//!
//! Every datagram pushed is in exactly one of: released, dropped (malformed,
//! wrong payload type, duplicate, late, foreign SSRC, out of range) or held
//! (in the ring, ready to poll, or in the challenger):
//! `datagrams == released + dropped() + held`. `lost` counts sequence
//! numbers given up on, not datagrams; each released packet says how many
//! were given up on just before it ([`Released::lost_before`]), and these add
//! up to `lost` once everything held has been released. `reordered` counts
//! packets held after a later one had already arrived.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use super::packet::{PAYLOAD_TYPE_MP2T, RtpError, RtpPacket};
use super::seq::SeqNo;
use crate::ts::PACKET_SIZE;

/// Upper bound on [`ReceiverConfig::window`]: ~1 s at 100 Mbit/s with 7 TS
/// packets per datagram.
pub const MAX_WINDOW: u16 = 8192;

/// Tuning for a [`TsReceiver`]; see the module docs for what each limit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Expected RTP payload type (7 bits).
    pub payload_type: u8,
    /// Reorder window in packets: the most packets held, and how far ahead of
    /// the next packet to release one may arrive before the head is given up.
    pub window: u16,
    /// Longest a packet is held behind a gap.
    pub max_delay: Duration,
    /// A packet this many or more places ahead of the head is a sequence
    /// jump, not loss (RFC 3550 A.1 `MAX_DROPOUT`).
    pub max_dropout: u16,
    /// Packets up to this many places behind the head are duplicates or
    /// late; further back they are a sequence jump (RFC 3550 A.1
    /// `MAX_MISORDER`).
    pub max_misorder: u16,
    /// Packets a challenger must send since the current stream's last one.
    pub takeover_packets: u16,
    /// Silence of the current stream a challenger must see.
    pub takeover_silence: Duration,
}

impl Default for ReceiverConfig {
    fn default() -> ReceiverConfig {
        ReceiverConfig {
            payload_type: PAYLOAD_TYPE_MP2T,
            window: 128,
            max_delay: Duration::from_millis(50),
            max_dropout: 3000,
            max_misorder: 256,
            takeover_packets: 3,
            takeover_silence: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("RTP payload type {0} does not fit in 7 bits: use 0 to 127 (33 is MPEG-TS)")]
    PayloadType(u8),
    #[error("reorder window of {0} packets is out of range: use 1 to {MAX_WINDOW}")]
    Window(u16),
    #[error(
        "max_dropout {max_dropout} is out of range: use at least the reorder window ({window}) and at most 32767"
    )]
    MaxDropout { max_dropout: u16, window: u16 },
    #[error(
        "max_misorder {max_misorder} is out of range: use at least the reorder window ({window}) and at most 32767"
    )]
    MaxMisorder { max_misorder: u16, window: u16 },
    #[error("takeover_packets must be at least 1")]
    TakeoverPackets,
}

impl ReceiverConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let window = self.window;
        if self.payload_type > 0x7F {
            return Err(ConfigError::PayloadType(self.payload_type));
        }
        if window == 0 || window > MAX_WINDOW {
            return Err(ConfigError::Window(window));
        }
        if self.max_dropout < window || self.max_dropout > 32767 {
            return Err(ConfigError::MaxDropout {
                max_dropout: self.max_dropout,
                window,
            });
        }
        if self.max_misorder < window || self.max_misorder > 32767 {
            return Err(ConfigError::MaxMisorder {
                max_misorder: self.max_misorder,
                window,
            });
        }
        if self.takeover_packets == 0 {
            return Err(ConfigError::TakeoverPackets);
        }
        Ok(())
    }
}

/// Counters since the receiver was made; see "Accounting" in the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Datagrams pushed.
    pub datagrams: u64,
    /// Payloads handed out by `poll`.
    pub released: u64,
    /// Sequence numbers given up on (gaps skipped).
    pub lost: u64,
    /// Packets held after a later packet had arrived.
    pub reordered: u64,
    pub duplicates: u64,
    /// Packets whose slot had been given up on (or lies before the start).
    pub late: u64,
    pub wrong_payload_type: u64,
    /// Datagrams that are not RTP packets.
    pub malformed: u64,
    /// Packets from another SSRC that did not take over.
    pub foreign_ssrc: u64,
    /// Packets of the current SSRC far outside its numbering that did not
    /// take over.
    pub out_of_range: u64,
    pub ssrc_changes: u64,
    /// Takeovers by the same SSRC with new numbering.
    pub resyncs: u64,
    /// Released payloads whose length is not a multiple of 188.
    pub partial_payloads: u64,
    /// Packets held now (ring, ready to poll, challenger).
    pub held: u64,
}

impl ReceiverStats {
    /// Every datagram dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.malformed
            + self.wrong_payload_type
            + self.duplicates
            + self.late
            + self.foreign_ssrc
            + self.out_of_range
    }
}

/// A packet released in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub packet: RtpPacket,
    /// Extended sequence number: `cycles * 2^16 + seq` (RFC 3550 A.1), with
    /// every takeover moving to a later cycle, so indices strictly increase
    /// over the receiver's life.
    pub index: u64,
    /// Sequence numbers given up on just before this packet.
    pub lost_before: u64,
    /// First packet of a stream (the first one, or after a takeover).
    pub new_source: bool,
}

/// What [`TsReceiver::push`] did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Held for release in sequence order.
    Held,
    /// Held as a challenger to the current stream, pending takeover.
    Challenging,
    /// The packet completed a takeover: the challenger is now the stream.
    TookOver {
        ssrc_changed: bool,
    },
    Dropped(DropReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    Malformed(RtpError),
    WrongPayloadType { expected: u8, got: u8 },
    Duplicate { seq: SeqNo },
    Late { seq: SeqNo },
}

/// See the module docs.
#[derive(Debug)]
pub struct TsReceiver {
    config: ReceiverConfig,
    /// Held packets by `index % ring.len()`; the length is a power of two
    /// at least `window`.
    ring: Box<[Option<Held>]>,
    /// Released (1) or given up (0) for the indices just before `next`, by
    /// `index % (64 * history.len())`; at least `max_misorder` bits.
    history: Box<[u64]>,
    ready: VecDeque<Released>,
    source: Option<Source>,
    /// Index of the next packet to release; `next as u16` is its sequence
    /// number.
    next: u64,
    highest: Option<u64>,
    /// Nothing released since the stream started: skipped slots are not loss.
    starting: bool,
    new_source: bool,
    lost_pending: u64,
    held: usize,
    /// Earliest arrival among held packets, when `oldest_known`.
    oldest: Option<Duration>,
    oldest_known: bool,
    challenger: Option<Challenger>,
    stats: ReceiverStats,
}

#[derive(Debug)]
struct Held {
    index: u64,
    arrival: Duration,
    packet: RtpPacket,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    last_arrival: Duration,
}

#[derive(Debug)]
struct Challenger {
    ssrc: u32,
    /// Same SSRC as the current stream (a sequence jump).
    same_ssrc: bool,
    highest: SeqNo,
    last_arrival: Duration,
    /// Packets since the current stream's last one.
    since_current: u16,
    packets: VecDeque<(Duration, RtpPacket)>,
}

impl TsReceiver {
    pub fn new(config: ReceiverConfig) -> Result<TsReceiver, ConfigError> {
        config.validate()?;
        let slots = usize::from(config.window).next_power_of_two();
        let history_words = usize::from(config.max_misorder)
            .next_power_of_two()
            .div_ceil(64);
        Ok(TsReceiver {
            ring: std::iter::repeat_with(|| None).take(slots).collect(),
            history: vec![0; history_words.next_power_of_two()].into_boxed_slice(),
            ready: VecDeque::new(),
            source: None,
            next: 0,
            highest: None,
            starting: true,
            new_source: false,
            lost_pending: 0,
            held: 0,
            oldest: None,
            oldest_known: true,
            challenger: None,
            stats: ReceiverStats::default(),
            config,
        })
    }

    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// SSRC of the current stream, once a packet has been accepted.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.map(|s| s.ssrc)
    }

    pub fn stats(&self) -> ReceiverStats {
        let challenger = self.challenger.as_ref().map_or(0, |c| c.packets.len());
        ReceiverStats {
            held: (self.held + self.ready.len() + challenger) as u64,
            ..self.stats
        }
    }

    /// Takes one datagram received at `now`. Then call [`Self::poll`].
    pub fn push(&mut self, now: Duration, datagram: Bytes) -> Pushed {
        self.stats.datagrams += 1;
        let packet = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Pushed::Dropped(DropReason::Malformed(e));
            }
        };
        if packet.payload_type() != self.config.payload_type {
            self.stats.wrong_payload_type += 1;
            return Pushed::Dropped(DropReason::WrongPayloadType {
                expected: self.config.payload_type,
                got: packet.payload_type(),
            });
        }
        let Some(source) = self.source else {
            self.start_stream(now, packet.ssrc(), packet.seq());
            return self.insert(now, packet);
        };
        if packet.ssrc() == source.ssrc && self.in_range(packet.seq()) {
            self.source = Some(Source {
                last_arrival: now,
                ..source
            });
            self.current_stream_active(now);
            return self.insert(now, packet);
        }
        self.challenge(now, packet)
    }

    /// The next payload in sequence order, if one is due at `now`.
    pub fn poll(&mut self, now: Duration) -> Option<Bytes> {
        self.poll_packet(now).map(|r| r.packet.into_payload())
    }

    /// Like [`Self::poll`], with the RTP header and sequence accounting.
    pub fn poll_packet(&mut self, now: Duration) -> Option<Released> {
        if self.takeover_due(now) {
            self.take_over();
        }
        if let Some(r) = self.ready.pop_front() {
            return Some(self.hand_out(r));
        }
        loop {
            if let Some(held) = self.take_slot(self.next) {
                let r = self.release(held);
                return Some(self.hand_out(r));
            }
            if self.held == 0 {
                return None;
            }
            let oldest = self.oldest_arrival()?;
            if oldest.saturating_add(self.config.max_delay) > now {
                return None;
            }
            let first = self.first_held_index()?;
            self.skip(first.saturating_sub(self.next));
        }
    }

    /// When [`Self::poll`] next has something to do, if ever without a new
    /// datagram. `Duration::ZERO` means now.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if !self.ready.is_empty() || self.slot_holds(self.next) {
            return Some(Duration::ZERO);
        }
        let gap = if self.held > 0 {
            let oldest = if self.oldest_known {
                self.oldest
            } else {
                self.scan_oldest()
            };
            oldest.map(|t| t.saturating_add(self.config.max_delay))
        } else {
            None
        };
        let takeover = match (&self.challenger, self.source) {
            (Some(c), Some(s)) if c.since_current >= self.config.takeover_packets => {
                Some(s.last_arrival.saturating_add(self.config.takeover_silence))
            }
            _ => None,
        };
        match (gap, takeover) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Gives up on every gap and makes every held packet of the current
    /// stream ready to poll (end of stream). Challenger packets stay held.
    pub fn flush(&mut self) {
        while self.held > 0 {
            if let Some(held) = self.take_slot(self.next) {
                let released = self.release(held);
                self.ready.push_back(released);
            } else if let Some(first) = self.first_held_index() {
                self.skip(first.saturating_sub(self.next));
            } else {
                break;
            }
        }
    }

    // --- the current stream -------------------------------------------------

    /// Starts the numbering of a new stream at `first`, as if a gap of
    /// `window - 1` slots preceded it (see "Start" in the module docs).
    fn start_stream(&mut self, now: Duration, ssrc: u32, first: SeqNo) {
        // A cycle (RFC 3550 A.1) past everything before, so indices keep
        // increasing and stale history or ring entries never match.
        let after = self
            .next
            .max(self.highest.map_or(0, |h| h.saturating_add(1)));
        let base = ((after >> 16) + 2) << 16;
        self.next = (base | u64::from(first.value())) - u64::from(self.config.window - 1);
        self.highest = None;
        self.starting = true;
        self.new_source = true;
        self.lost_pending = 0;
        self.history.fill(0);
        self.source = Some(Source {
            ssrc,
            last_arrival: now,
        });
    }

    /// The wrap-aware distance from the head.
    fn distance(&self, seq: SeqNo) -> i16 {
        seq.distance(SeqNo::new(self.next as u16))
    }

    fn in_range(&self, seq: SeqNo) -> bool {
        let d = i32::from(self.distance(seq));
        d < i32::from(self.config.max_dropout) && d >= -i32::from(self.config.max_misorder)
    }

    /// Holds a packet of the current stream, which must be [`Self::in_range`].
    fn insert(&mut self, now: Duration, packet: RtpPacket) -> Pushed {
        let seq = packet.seq();
        let d = self.distance(seq);
        let index = self.next.saturating_add_signed(i64::from(d));
        if d < 0 {
            return Pushed::Dropped(if self.history_bit(index) {
                self.stats.duplicates += 1;
                DropReason::Duplicate { seq }
            } else {
                self.stats.late += 1;
                DropReason::Late { seq }
            });
        }
        let window = u64::from(self.config.window);
        if index >= self.next.saturating_add(window) {
            self.advance_to(index + 1 - window);
        }
        let Some(slot) = self.slot_mut(index) else {
            // Unreachable: the ring is never empty. Counted so that the
            // accounting holds whatever happens.
            self.stats.duplicates += 1;
            return Pushed::Dropped(DropReason::Duplicate { seq });
        };
        if slot.as_ref().is_some_and(|h| h.index == index) {
            self.stats.duplicates += 1;
            return Pushed::Dropped(DropReason::Duplicate { seq });
        }
        // Every held index lies in [next, next + window) and the ring has at
        // least `window` slots, so the slot is free.
        *slot = Some(Held {
            index,
            arrival: now,
            packet,
        });
        self.held += 1;
        if self.oldest_known {
            self.oldest = Some(self.oldest.map_or(now, |t| t.min(now)));
        }
        if self.highest.is_some_and(|h| index < h) {
            self.stats.reordered += 1;
        }
        self.highest = Some(self.highest.map_or(index, |h| h.max(index)));
        Pushed::Held
    }

    /// Releases or gives up on every slot before `target`.
    fn advance_to(&mut self, target: u64) {
        while self.next < target {
            if let Some(held) = self.take_slot(self.next) {
                let released = self.release(held);
                self.ready.push_back(released);
                continue;
            }
            let stop = match self.first_held_index() {
                Some(first) => first.min(target),
                None => target,
            };
            self.skip(stop - self.next);
        }
    }

    /// Gives up on `n` empty slots at the head.
    fn skip(&mut self, n: u64) {
        let bits = 64 * self.history.len() as u64;
        let end = self.next.saturating_add(n);
        for index in end.saturating_sub(bits).max(self.next)..end {
            self.set_history_bit(index, false);
        }
        if !self.starting {
            self.stats.lost += n;
            self.lost_pending += n;
        }
        self.next = end;
    }

    /// Hands out the head packet and moves the head past it.
    fn release(&mut self, held: Held) -> Released {
        self.set_history_bit(held.index, true);
        self.next = held.index + 1;
        self.starting = false;
        Released {
            packet: held.packet,
            index: held.index,
            lost_before: std::mem::take(&mut self.lost_pending),
            new_source: std::mem::take(&mut self.new_source),
        }
    }

    /// Counts a packet leaving the receiver.
    fn hand_out(&mut self, released: Released) -> Released {
        self.stats.released += 1;
        if !released.packet.payload().len().is_multiple_of(PACKET_SIZE) {
            self.stats.partial_payloads += 1;
        }
        released
    }

    // --- ring and history ---------------------------------------------------

    fn slot_mut(&mut self, index: u64) -> Option<&mut Option<Held>> {
        let mask = self.ring.len() as u64 - 1;
        self.ring.get_mut((index & mask) as usize)
    }

    fn slot_holds(&self, index: u64) -> bool {
        let mask = self.ring.len() as u64 - 1;
        self.ring
            .get((index & mask) as usize)
            .is_some_and(|s| s.as_ref().is_some_and(|h| h.index == index))
    }

    fn take_slot(&mut self, index: u64) -> Option<Held> {
        let slot = self.slot_mut(index)?;
        if slot.as_ref().is_none_or(|h| h.index != index) {
            return None;
        }
        let held = slot.take()?;
        self.held -= 1;
        if self.held == 0 {
            self.oldest = None;
            self.oldest_known = true;
        } else if self.oldest == Some(held.arrival) {
            self.oldest_known = false;
        }
        Some(held)
    }

    /// The lowest held index (a scan: only on a gap).
    fn first_held_index(&self) -> Option<u64> {
        if self.held == 0 {
            return None;
        }
        let window = u64::from(self.config.window);
        (self.next..self.next.saturating_add(window)).find(|&i| self.slot_holds(i))
    }

    fn oldest_arrival(&mut self) -> Option<Duration> {
        if !self.oldest_known {
            self.oldest = self.scan_oldest();
            self.oldest_known = true;
        }
        self.oldest
    }

    fn scan_oldest(&self) -> Option<Duration> {
        self.ring.iter().flatten().map(|h| h.arrival).min()
    }

    fn history_bit(&self, index: u64) -> bool {
        let bits = 64 * self.history.len() as u64;
        let i = index % bits;
        self.history
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set_history_bit(&mut self, index: u64, value: bool) {
        let bits = 64 * self.history.len() as u64;
        let i = index % bits;
        if let Some(w) = self.history.get_mut((i / 64) as usize) {
            if value {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }

    // --- challengers and takeover -------------------------------------------

    /// A packet of the current stream arrived: a challenger's run restarts,
    /// and a challenger quiet for `takeover_silence` is forgotten.
    fn current_stream_active(&mut self, now: Duration) {
        let Some(c) = &mut self.challenger else {
            return;
        };
        c.since_current = 0;
        if c.last_arrival.saturating_add(self.config.takeover_silence) <= now {
            self.drop_challenger();
        }
    }

    fn challenge(&mut self, now: Duration, packet: RtpPacket) -> Pushed {
        let seq = packet.seq();
        let fits = self.challenger.as_ref().is_some_and(|c| {
            let d = i32::from(seq.distance(c.highest));
            c.ssrc == packet.ssrc()
                && d < i32::from(self.config.max_dropout)
                && d >= -i32::from(self.config.max_misorder)
        });
        if !fits {
            self.drop_challenger();
        }
        let same_ssrc = self.source.is_some_and(|s| s.ssrc == packet.ssrc());
        let c = self.challenger.get_or_insert_with(|| Challenger {
            ssrc: packet.ssrc(),
            same_ssrc,
            highest: seq,
            last_arrival: now,
            since_current: 0,
            packets: VecDeque::new(),
        });
        if seq.is_after(c.highest) {
            c.highest = seq;
        }
        c.last_arrival = now;
        c.since_current = c.since_current.saturating_add(1);
        c.packets.push_back((now, packet));
        if c.packets.len() > usize::from(self.config.window) {
            c.packets.pop_front();
            self.count_challenger_drops(1);
        }
        if self.takeover_due(now) {
            let ssrc_changed = !same_ssrc;
            self.take_over();
            return Pushed::TookOver { ssrc_changed };
        }
        Pushed::Challenging
    }

    fn takeover_due(&self, now: Duration) -> bool {
        match (&self.challenger, self.source) {
            (Some(c), Some(s)) => {
                c.since_current >= self.config.takeover_packets
                    && s.last_arrival.saturating_add(self.config.takeover_silence) <= now
            }
            _ => false,
        }
    }

    fn count_challenger_drops(&mut self, n: u64) {
        if self.challenger.as_ref().is_some_and(|c| c.same_ssrc) {
            self.stats.out_of_range += n;
        } else {
            self.stats.foreign_ssrc += n;
        }
    }

    fn drop_challenger(&mut self) {
        let n = self.challenger.as_ref().map_or(0, |c| c.packets.len());
        self.count_challenger_drops(n as u64);
        self.challenger = None;
    }

    /// The challenger becomes the stream: release what the current stream
    /// holds, restart the numbering, replay the challenger's packets.
    fn take_over(&mut self) {
        let Some(c) = self.challenger.take() else {
            return;
        };
        let Some(&(first_arrival, ref first)) = c.packets.front() else {
            return;
        };
        self.flush();
        if c.same_ssrc {
            self.stats.resyncs += 1;
        } else {
            self.stats.ssrc_changes += 1;
        }
        self.start_stream(first_arrival, c.ssrc, first.seq());
        for (arrival, packet) in c.packets {
            if self.in_range(packet.seq()) {
                self.insert(arrival, packet);
            } else {
                self.stats.out_of_range += 1;
            }
        }
        self.source = Some(Source {
            ssrc: c.ssrc,
            last_arrival: c.last_arrival,
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;
    use crate::probe::Prober;
    use crate::rtp::packet::RtpPacketBuilder;

    const A: u32 = 0xAAAA_0001;
    const B: u32 = 0xBBBB_0002;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One TS packet whose bytes 1..3 carry `seq`, so the output order can be
    /// read back from the payloads.
    fn ts_for(seq: u16) -> [u8; PACKET_SIZE] {
        let mut ts = [0xFFu8; PACKET_SIZE];
        ts[0] = 0x47;
        ts[1..3].copy_from_slice(&seq.to_be_bytes());
        ts
    }

    fn datagram(ssrc: u32, seq: u16) -> Bytes {
        RtpPacketBuilder::new(SeqNo::new(seq), ssrc).build(&ts_for(seq))
    }

    fn seq_of(payload: &[u8]) -> u16 {
        u16::from_be_bytes([payload[1], payload[2]])
    }

    fn receiver(window: u16) -> TsReceiver {
        TsReceiver::new(ReceiverConfig {
            window,
            ..ReceiverConfig::default()
        })
        .unwrap()
    }

    fn drain(rx: &mut TsReceiver, now: Duration) -> Vec<u16> {
        let mut out = Vec::new();
        while let Some(p) = rx.poll(now) {
            out.push(seq_of(&p));
        }
        check_accounting(rx);
        out
    }

    fn drain_released(rx: &mut TsReceiver, now: Duration) -> Vec<Released> {
        std::iter::from_fn(|| rx.poll_packet(now)).collect()
    }

    fn check_accounting(rx: &TsReceiver) {
        let s = rx.stats();
        assert_eq!(s.datagrams, s.released + s.dropped() + s.held, "{s:?}");
    }

    /// Pushes every sequence number at `now`, polling after each.
    fn feed(rx: &mut TsReceiver, now: Duration, ssrc: u32, seqs: &[u16]) -> Vec<u16> {
        let mut out = Vec::new();
        for &seq in seqs {
            rx.push(now, datagram(ssrc, seq));
            out.extend(drain(rx, now));
        }
        out
    }

    fn range(start: u16, n: u16) -> Vec<u16> {
        (0..n).map(|i| start.wrapping_add(i)).collect()
    }

    #[test]
    fn in_order_packets_come_out_in_order_after_the_start_window() {
        let mut rx = receiver(8);
        // At the start the first packet waits for the window to fill: the
        // first 7 are held, the 8th releases the first 8.
        assert_eq!(feed(&mut rx, ms(0), A, &range(100, 7)), Vec::<u16>::new());
        assert_eq!(feed(&mut rx, ms(1), A, &[107]), range(100, 8));
        // From then on every packet comes straight out.
        for seq in 108..200 {
            assert_eq!(feed(&mut rx, ms(2), A, &[seq]), [seq]);
            assert_eq!(rx.poll_timeout(), None);
        }
        let s = rx.stats();
        assert_eq!((s.released, s.lost, s.reordered, s.held), (100, 0, 0, 0));
        assert_eq!(rx.ssrc(), Some(A));
    }

    #[test]
    fn start_releases_after_max_delay_without_counting_loss() {
        let mut rx = receiver(8);
        assert_eq!(rx.poll_timeout(), None);
        assert_eq!(rx.push(ms(10), datagram(A, 5)), Pushed::Held);
        assert_eq!(drain(&mut rx, ms(10)), Vec::<u16>::new());
        assert_eq!(rx.poll_timeout(), Some(ms(60)));
        assert_eq!(drain(&mut rx, ms(59)), Vec::<u16>::new());
        let out = drain_released(&mut rx, ms(60));
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].lost_before, out[0].new_source), (0, true));
        assert_eq!(out[0].packet.seq(), SeqNo::new(5));
        assert_eq!(rx.stats().lost, 0);
        // A packet from before the start is late.
        assert_eq!(
            rx.push(ms(61), datagram(A, 4)),
            Pushed::Dropped(DropReason::Late { seq: SeqNo::new(4) })
        );
        assert_eq!(feed(&mut rx, ms(61), A, &[6]), [6]);
    }

    #[test]
    fn window_of_one_never_waits() {
        let mut rx = receiver(1);
        assert_eq!(
            feed(&mut rx, ms(0), A, &[10, 11, 13, 12, 14]),
            [10, 11, 13, 14]
        );
        let s = rx.stats();
        assert_eq!((s.lost, s.late), (1, 1));
    }

    /// Every permutation of each block of 4 comes out in order with no loss.
    #[test]
    fn every_permutation_within_the_window_is_repaired() {
        fn permutations(items: &[u16]) -> Vec<Vec<u16>> {
            if items.len() <= 1 {
                return vec![items.to_vec()];
            }
            let mut out = Vec::new();
            for (i, &x) in items.iter().enumerate() {
                let mut rest = items.to_vec();
                rest.remove(i);
                for mut p in permutations(&rest) {
                    p.insert(0, x);
                    out.push(p);
                }
            }
            out
        }
        let perms = permutations(&[0, 1, 2, 3]);
        assert_eq!(perms.len(), 24);
        for start in [0u16, 65533] {
            for first in &perms {
                for second in &perms {
                    let mut rx = receiver(4);
                    let order: Vec<u16> = first
                        .iter()
                        .map(|&i| start.wrapping_add(i))
                        .chain(second.iter().map(|&i| start.wrapping_add(4 + i)))
                        .chain(range(start.wrapping_add(8), 4))
                        .collect();
                    let out = feed(&mut rx, ms(0), A, &order);
                    assert_eq!(out, range(start, 12), "order {order:?}");
                    let s = rx.stats();
                    assert_eq!((s.lost, s.late, s.duplicates, s.held), (0, 0, 0, 0));
                }
            }
        }
    }

    #[test]
    fn reordering_across_the_sequence_wrap() {
        let mut rx = receiver(8);
        let order = [
            65530, 65532, 65531, 65534, 0, 65533, 65535, 2, 1, 3, 4, 6, 5,
        ];
        let mut out = feed(&mut rx, ms(0), A, &order);
        out.extend(drain(&mut rx, ms(100)));
        assert_eq!(out, range(65530, 13));
        let s = rx.stats();
        assert_eq!((s.lost, s.late, s.reordered), (0, 0, 5));
    }

    #[test]
    fn a_gap_is_given_up_after_max_delay() {
        let mut rx = receiver(32);
        feed(&mut rx, ms(0), A, &range(0, 32));
        // 32 is lost; 33.. wait behind it.
        assert_eq!(feed(&mut rx, ms(10), A, &[33, 34]), Vec::<u16>::new());
        assert_eq!(feed(&mut rx, ms(30), A, &[35]), Vec::<u16>::new());
        // Held since 10 ms: due at 60 ms.
        assert_eq!(rx.poll_timeout(), Some(ms(60)));
        assert_eq!(drain(&mut rx, ms(59)), Vec::<u16>::new());
        let out = drain_released(&mut rx, ms(60));
        let seqs: Vec<u16> = out.iter().map(|r| r.packet.seq().value()).collect();
        assert_eq!(seqs, [33, 34, 35]);
        assert_eq!(out[0].lost_before, 1);
        assert_eq!(out[1].lost_before, 0);
        assert_eq!(out[1].index, out[0].index + 1);
        assert_eq!(rx.stats().lost, 1);
        // The lost packet arriving now is late.
        assert_eq!(
            rx.push(ms(61), datagram(A, 32)),
            Pushed::Dropped(DropReason::Late {
                seq: SeqNo::new(32)
            })
        );
        assert_eq!(rx.stats().late, 1);
    }

    #[test]
    fn a_gap_is_given_up_when_the_window_fills() {
        let mut rx = receiver(8);
        feed(&mut rx, ms(0), A, &range(0, 8));
        // 8 and 9 are lost; 10..=16 fit behind them, 17 needs the head to move
        // past 9.
        assert_eq!(feed(&mut rx, ms(1), A, &range(10, 6)), Vec::<u16>::new());
        assert_eq!(feed(&mut rx, ms(1), A, &[16]), Vec::<u16>::new());
        assert_eq!(feed(&mut rx, ms(1), A, &[17]), range(10, 8));
        assert_eq!(rx.stats().lost, 2);
    }

    #[test]
    fn an_expired_packet_behind_a_second_gap_is_released_too() {
        let mut rx = receiver(16);
        feed(&mut rx, ms(0), A, &range(0, 16));
        // Gaps at 16 and 18; 19 arrives first, 17 later.
        feed(&mut rx, ms(10), A, &[19]);
        feed(&mut rx, ms(40), A, &[17]);
        assert_eq!(rx.poll_timeout(), Some(ms(60)));
        // At 60 ms 19 is due: both gaps are given up, 17 comes out on the way.
        assert_eq!(drain(&mut rx, ms(60)), [17, 19]);
        assert_eq!(rx.stats().lost, 2);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn packets_made_ready_by_push_count_as_held_until_polled() {
        let mut rx = receiver(4);
        for seq in 0..20 {
            rx.push(ms(0), datagram(A, seq));
            check_accounting(&rx);
        }
        let s = rx.stats();
        assert_eq!((s.released, s.held), (0, 20));
        assert_eq!(rx.poll_timeout(), Some(Duration::ZERO));
        assert_eq!(drain(&mut rx, ms(0)), range(0, 20));
        let s = rx.stats();
        assert_eq!((s.released, s.held), (20, 0));
    }

    #[test]
    fn duplicates_are_dropped_whether_held_or_released() {
        let mut rx = receiver(8);
        feed(&mut rx, ms(0), A, &range(0, 8));
        assert_eq!(
            rx.push(ms(1), datagram(A, 3)),
            Pushed::Dropped(DropReason::Duplicate { seq: SeqNo::new(3) })
        );
        assert_eq!(feed(&mut rx, ms(1), A, &[9]), Vec::<u16>::new());
        assert_eq!(
            rx.push(ms(1), datagram(A, 9)),
            Pushed::Dropped(DropReason::Duplicate { seq: SeqNo::new(9) })
        );
        assert_eq!(feed(&mut rx, ms(1), A, &[8]), [8, 9]);
        let s = rx.stats();
        assert_eq!((s.duplicates, s.late, s.lost, s.reordered), (2, 0, 0, 1));
        check_accounting(&rx);
    }

    #[test]
    fn wrong_payload_type_malformed_and_partial_payloads() {
        let mut rx = receiver(1);
        let mut b = RtpPacketBuilder::new(SeqNo::new(1), A);
        b.payload_type = 96;
        assert_eq!(
            rx.push(ms(0), b.build(&ts_for(1))),
            Pushed::Dropped(DropReason::WrongPayloadType {
                expected: 33,
                got: 96
            })
        );
        assert!(matches!(
            rx.push(ms(0), Bytes::from_static(&[0x47, 0, 0])),
            Pushed::Dropped(DropReason::Malformed(RtpError::TooShort { len: 3 }))
        ));
        // 188 + 10 bytes: passed on, counted.
        let mut payload = ts_for(2).to_vec();
        payload.extend_from_slice(&[0; 10]);
        rx.push(
            ms(0),
            RtpPacketBuilder::new(SeqNo::new(2), A).build(&payload),
        );
        assert_eq!(rx.poll(ms(0)).map(|p| p.len()), Some(198));
        let s = rx.stats();
        assert_eq!(
            (s.wrong_payload_type, s.malformed, s.partial_payloads),
            (1, 1, 1)
        );
        check_accounting(&rx);
        // A receiver configured for a dynamic payload type takes it.
        let mut rx = TsReceiver::new(ReceiverConfig {
            payload_type: 96,
            window: 1,
            ..ReceiverConfig::default()
        })
        .unwrap();
        assert_eq!(rx.push(ms(0), b.build(&ts_for(1))), Pushed::Held);
        assert_eq!(drain(&mut rx, ms(0)), [1]);
    }

    #[test]
    fn padding_extension_and_csrcs_do_not_reach_the_payload() {
        let mut rx = receiver(1);
        let b = RtpPacketBuilder {
            csrcs: vec![1, 2],
            extension: Some((0xBEDE, vec![9; 8])),
            padding: 4,
            ..RtpPacketBuilder::new(SeqNo::new(7), A)
        };
        rx.push(ms(0), b.build(&ts_for(7)));
        assert_eq!(rx.poll(ms(0)).unwrap(), &ts_for(7)[..]);
    }

    #[test]
    fn new_ssrc_after_the_old_sender_stops_takes_over_without_loss() {
        let mut rx = receiver(8);
        let mut out = feed(&mut rx, ms(0), A, &range(0, 20));
        // A stops at 0 ms; B starts 200 ms later with its own numbering.
        assert_eq!(rx.push(ms(200), datagram(B, 5000)), Pushed::Challenging);
        assert_eq!(rx.push(ms(201), datagram(B, 5002)), Pushed::Challenging);
        assert_eq!(
            rx.push(ms(202), datagram(B, 5001)),
            Pushed::TookOver { ssrc_changed: true }
        );
        assert_eq!(out, range(0, 20));
        // B's first packets wait for its start window (8 packets or 50 ms).
        assert_eq!(drain(&mut rx, ms(202)), Vec::<u16>::new());
        out.extend(feed(&mut rx, ms(203), B, &range(5003, 20)));
        out.extend(drain(&mut rx, ms(400)));
        let mut expected = range(0, 20);
        expected.extend(range(5000, 23));
        assert_eq!(out, expected);
        let s = rx.stats();
        assert_eq!(
            (s.ssrc_changes, s.resyncs, s.lost, s.foreign_ssrc, s.late),
            (1, 0, 0, 0, 0)
        );
        assert_eq!(rx.ssrc(), Some(B));
    }

    #[test]
    fn new_ssrc_right_after_the_old_one_waits_for_silence() {
        let mut rx = receiver(8);
        let mut out = feed(&mut rx, ms(0), A, &range(0, 20));
        // B starts 10 ms after A's last packet: held until A has been silent
        // for takeover_silence (100 ms).
        for (i, seq) in range(40000, 5).into_iter().enumerate() {
            assert_eq!(
                rx.push(ms(10 + i as u64), datagram(B, seq)),
                Pushed::Challenging
            );
        }
        out.extend(drain(&mut rx, ms(20)));
        assert_eq!(rx.poll_timeout(), Some(ms(100)));
        let released = drain_released(&mut rx, ms(100));
        assert!(
            released
                .iter()
                .any(|r| r.new_source && r.packet.ssrc() == B)
        );
        out.extend(released.iter().map(|r| r.packet.seq().value()));
        out.extend(drain(&mut rx, ms(200)));
        let mut expected = range(0, 20);
        expected.extend(range(40000, 5));
        assert_eq!(out, expected);
        assert_eq!(rx.stats().ssrc_changes, 1);
        check_accounting(&rx);
    }

    #[test]
    fn a_stray_packet_from_another_ssrc_does_not_hijack_the_stream() {
        let mut rx = receiver(8);
        let mut out = Vec::new();
        for i in 0..300u16 {
            let now = ms(u64::from(i));
            if i == 50 {
                assert_eq!(rx.push(now, datagram(B, 777)), Pushed::Challenging);
            }
            rx.push(now, datagram(A, i));
            out.extend(drain(&mut rx, now));
        }
        out.extend(drain(&mut rx, ms(1000)));
        assert_eq!(out, range(0, 300));
        let s = rx.stats();
        assert_eq!((s.ssrc_changes, s.foreign_ssrc, s.held), (0, 1, 0));
        assert_eq!(rx.ssrc(), Some(A));
    }

    #[test]
    fn a_second_sender_on_the_same_port_never_takes_over_a_live_stream() {
        let mut rx = receiver(8);
        let mut out = Vec::new();
        // A is first; B then sends three packets for each of A's, 5 ms apart.
        for i in 0..200u16 {
            let now = ms(5 * u64::from(i));
            rx.push(now, datagram(A, i));
            out.extend(drain(&mut rx, now));
            for k in 0..3 {
                rx.push(now, datagram(B, 3 * i + k));
            }
        }
        assert_eq!(out, range(0, 200));
        let s = rx.stats();
        assert_eq!(s.ssrc_changes, 0);
        assert_eq!((s.foreign_ssrc, s.held), (600 - 8, 8));
        assert_eq!(rx.ssrc(), Some(A));
        // Once A has stopped for takeover_silence, B (the challenger with the
        // last 8 packets) does take over.
        assert_eq!(rx.poll_timeout(), Some(ms(995 + 100)));
        let released = drain_released(&mut rx, ms(1095));
        assert_eq!(released.len(), 8);
        assert!(released.iter().all(|r| r.packet.ssrc() == B));
        assert_eq!(rx.stats().ssrc_changes, 1);
    }

    #[test]
    fn takeover_flushes_the_old_streams_held_packets_counting_its_gaps() {
        let mut rx = receiver(8);
        feed(&mut rx, ms(0), A, &range(0, 8));
        // A's 8 is lost, 9 and 10 wait; then A stops and B takes over before
        // max_delay would have released them.
        feed(&mut rx, ms(1), A, &[9, 10]);
        let mut out = Vec::new();
        for (i, seq) in range(100, 3).into_iter().enumerate() {
            rx.push(ms(101 + i as u64), datagram(B, seq));
        }
        let released = drain_released(&mut rx, ms(103));
        out.extend(
            released
                .iter()
                .map(|r| (r.packet.ssrc(), r.packet.seq().value())),
        );
        assert_eq!(out, [(A, 9), (A, 10)]);
        assert_eq!(released[0].lost_before, 1);
        // B's packets start a new stream (start window: 8 packets or 50 ms).
        let released = drain_released(&mut rx, ms(200));
        assert_eq!(released.len(), 3);
        assert!(released[0].new_source);
        assert!(released[0].index > 10 + (1 << 16));
        assert_eq!(rx.stats().lost, 1);
    }

    #[test]
    fn a_sequence_jump_resyncs_instead_of_counting_thousands_lost() {
        let mut rx = receiver(8);
        let mut out = feed(&mut rx, ms(0), A, &range(0, 100));
        // The sender restarts with the same SSRC and new numbering.
        out.extend(feed(&mut rx, ms(300), A, &range(30000, 20)));
        out.extend(drain(&mut rx, ms(400)));
        let mut expected = range(0, 100);
        expected.extend(range(30000, 20));
        assert_eq!(out, expected);
        let s = rx.stats();
        assert_eq!(
            (s.resyncs, s.ssrc_changes, s.lost, s.out_of_range),
            (1, 0, 0, 0)
        );
        // A backwards restart too (further back than max_misorder).
        out = feed(&mut rx, ms(600), A, &range(100, 20));
        out.extend(drain(&mut rx, ms(700)));
        assert_eq!(out, range(100, 20));
        assert_eq!(rx.stats().resyncs, 2);
    }

    #[test]
    fn a_stray_far_sequence_number_is_dropped_not_a_resync() {
        let mut rx = receiver(8);
        let mut out = Vec::new();
        for i in 0..300u16 {
            let now = ms(u64::from(i));
            if i == 20 || i == 21 {
                assert_eq!(rx.push(now, datagram(A, 40000)), Pushed::Challenging);
            }
            rx.push(now, datagram(A, i));
            out.extend(drain(&mut rx, now));
        }
        out.extend(drain(&mut rx, ms(1000)));
        assert_eq!(out, range(0, 300));
        let s = rx.stats();
        assert_eq!((s.resyncs, s.out_of_range, s.lost), (0, 2, 0));
    }

    #[test]
    fn a_forward_jump_below_max_dropout_is_loss() {
        let mut rx = receiver(8);
        let mut out = feed(&mut rx, ms(0), A, &range(0, 8));
        out.extend(feed(&mut rx, ms(1), A, &range(1008, 8)));
        out.extend(drain(&mut rx, ms(100)));
        let mut expected = range(0, 8);
        expected.extend(range(1008, 8));
        assert_eq!(out, expected);
        assert_eq!(rx.stats().lost, 1000);
        assert_eq!(rx.stats().resyncs, 0);
    }

    #[test]
    fn poll_timeout_and_flush() {
        let mut rx = receiver(8);
        rx.push(ms(0), datagram(A, 0));
        rx.push(ms(0), datagram(A, 2));
        assert_eq!(rx.poll_timeout(), Some(ms(50)));
        rx.flush();
        assert_eq!(rx.poll_timeout(), Some(Duration::ZERO));
        assert_eq!(drain(&mut rx, ms(0)), [0, 2]);
        assert_eq!(rx.stats().lost, 1);
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn config_is_validated() {
        let bad = |c: ReceiverConfig| TsReceiver::new(c).unwrap_err();
        let d = ReceiverConfig::default;
        assert_eq!(
            bad(ReceiverConfig { window: 0, ..d() }),
            ConfigError::Window(0)
        );
        assert_eq!(
            bad(ReceiverConfig {
                payload_type: 200,
                ..d()
            }),
            ConfigError::PayloadType(200)
        );
        assert!(matches!(
            bad(ReceiverConfig {
                max_dropout: 10,
                ..d()
            }),
            ConfigError::MaxDropout { .. }
        ));
        assert!(matches!(
            bad(ReceiverConfig {
                max_misorder: 40000,
                ..d()
            }),
            ConfigError::MaxMisorder { .. }
        ));
        assert_eq!(
            bad(ReceiverConfig {
                takeover_packets: 0,
                ..d()
            }),
            ConfigError::TakeoverPackets
        );
        assert_eq!(
            bad(ReceiverConfig { window: 0, ..d() }).to_string(),
            "reorder window of 0 packets is out of range: use 1 to 8192"
        );
    }

    /// xorshift64: a seeded generator for shuffles, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Shuffles each block of `block` items (Fisher-Yates).
    fn shuffle_blocks<T>(items: &mut [T], block: usize, rng: &mut XorShift) {
        for chunk in items.chunks_mut(block) {
            for i in (1..chunk.len()).rev() {
                chunk.swap(i, rng.below(i + 1));
            }
        }
    }

    /// A real capture, 7 TS packets per RTP packet as ffmpeg's `rtp_mpegts`
    /// sends them, shuffled within the window and sprinkled with duplicates,
    /// comes out byte-identical: the probe sees the same frames and IDRs and
    /// no CC error.
    #[test]
    fn real_capture_through_shuffled_rtp_probes_like_the_original() {
        const CAPTURE: &[u8] = include_bytes!("../../testdata/h264_aac_closed_gop.ts");
        let probe = |bytes: &[&[u8]]| {
            let mut p = Prober::new();
            for b in bytes {
                p.push(b);
            }
            p.finish().unwrap()
        };
        let original = probe(&[CAPTURE]);

        let mut datagrams: Vec<Bytes> = CAPTURE
            .chunks(7 * PACKET_SIZE)
            .enumerate()
            .map(|(i, chunk)| {
                let b = RtpPacketBuilder {
                    timestamp: (i as u32).wrapping_mul(3000),
                    // Start close to the wrap so the stream crosses it.
                    ..RtpPacketBuilder::new(SeqNo::new(65500u16.wrapping_add(i as u16)), A)
                };
                b.build(chunk)
            })
            .collect();
        let n = datagrams.len();
        let mut rng = XorShift(0x5EED_1234_ABCD_0001);
        shuffle_blocks(&mut datagrams, 16, &mut rng);
        let mut dups = 0;
        for i in (0..n).step_by(37) {
            let d = datagrams[i].clone();
            datagrams.insert(i + 3, d);
            dups += 1;
        }

        let mut rx = receiver(16);
        let mut out: Vec<Bytes> = Vec::new();
        for (i, d) in datagrams.into_iter().enumerate() {
            let now = Duration::from_micros(i as u64 * 1300);
            rx.push(now, d);
            out.extend(std::iter::from_fn(|| rx.poll(now)));
        }
        let end = rx.poll_timeout().unwrap_or_default();
        out.extend(std::iter::from_fn(|| rx.poll(end)));

        let s = rx.stats();
        assert_eq!((s.released, s.lost, s.late), (n as u64, 0, 0), "{s:?}");
        assert_eq!(s.duplicates, dups);
        assert!(s.reordered > 0);
        let joined: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(joined, CAPTURE);

        let pieces: Vec<&[u8]> = out.iter().map(|b| &b[..]).collect();
        let report = probe(&pieces);
        let video = report.video.as_ref().unwrap();
        let want = original.video.as_ref().unwrap();
        assert_eq!(video.frames, want.frames);
        assert_eq!(video.idr_pts, want.idr_pts);
        assert_eq!(video.idr_pts.len(), 4);
        assert_eq!(report.cc_errors, 0);
        assert_eq!(report.packets, original.packets);
        assert_eq!(
            report.audio.iter().map(|a| a.frames).collect::<Vec<_>>(),
            original.audio.iter().map(|a| a.frames).collect::<Vec<_>>()
        );
    }

    proptest! {
        /// Blocks of up to `window` packets, each shuffled, starting anywhere
        /// (so often across the wrap): in order, nothing lost or late.
        #[test]
        fn shuffles_within_the_window_come_out_in_order(
            window in 1u16..24,
            start: u16,
            n in 1u16..200,
            seed in 1u64..,
        ) {
            let mut rx = receiver(window);
            let mut order = range(start, n);
            shuffle_blocks(&mut order, usize::from(window), &mut XorShift(seed));
            let mut out = feed(&mut rx, ms(0), A, &order);
            out.extend(drain(&mut rx, ms(50)));
            prop_assert_eq!(out, range(start, n));
            let s = rx.stats();
            prop_assert_eq!((s.lost, s.late, s.duplicates, s.held), (0, 0, 0, 0));
        }

        /// Any datagrams at all, any timing: no panic, indices strictly
        /// increase, accounting holds, and the loss reported per packet adds
        /// up once everything is flushed.
        #[test]
        fn arbitrary_datagrams_keep_the_invariants(
            ops in proptest::collection::vec(
                (0u64..40, prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from),
                    (any::<bool>(), 0u16..64, any::<bool>()).prop_map(|(b, s, far)| {
                        let seq = if far { s.wrapping_mul(997) } else { s };
                        datagram(if b { B } else { A }, seq)
                    }),
                ], any::<bool>()),
                0..300,
            ),
        ) {
            let mut rx = receiver(8);
            let mut now = Duration::ZERO;
            let mut last = None;
            let mut lost = 0;
            let check = |r: Released, last: &mut Option<u64>| {
                prop_assert!(last.is_none_or(|l| r.index > l));
                prop_assert_eq!(r.index as u16, r.packet.seq().value());
                *last = Some(r.index);
                Ok(r.lost_before)
            };
            for (dt, d, poll) in ops {
                now += Duration::from_millis(dt);
                rx.push(now, d);
                while poll && let Some(r) = rx.poll_packet(now) {
                    lost += check(r, &mut last)?;
                }
                check_accounting(&rx);
            }
            rx.flush();
            while let Some(r) = rx.poll_packet(now) {
                lost += check(r, &mut last)?;
            }
            prop_assert_eq!(lost, rx.stats().lost);
            check_accounting(&rx);
        }
    }
}
