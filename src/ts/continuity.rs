//! Per-PID continuity counter checking (ISO/IEC 13818-1 §2.4.3.3).
//!
//! The counter increments by one, mod 16, with each packet of a PID that
//! carries a payload. Packets without payload (adaptation field only) must
//! repeat the previous value and are not checked. One duplicate packet (same
//! counter, sent twice for robustness) is allowed; a second repeat is an
//! error. A packet whose adaptation field sets `discontinuity_indicator`
//! may carry any counter and restarts tracking. Null packets are exempt.

use super::packet::TsPacket;
use super::types::{Cc, Pid};

/// The outcome of checking one packet's continuity counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The expected counter, or the first packet seen on the PID.
    InOrder,
    /// A repeat of the previous packet (first repeat only); decoders drop it.
    Duplicate,
    /// Counter restarted by `discontinuity_indicator`.
    Discontinuity,
    /// Not checked: no payload, or the null PID.
    Unchecked,
    /// Packets lost or out of order.
    Error { expected: Cc, got: Cc },
}

impl Continuity {
    pub fn is_error(self) -> bool {
        matches!(self, Continuity::Error { .. })
    }
}

const SEEN: u8 = 0x10;
const REPEATED: u8 = 0x20;

/// Tracks the last counter of every PID in a flat 8 KiB table.
#[derive(Clone)]
pub struct CcTracker {
    /// Per PID: bits 0–3 last counter, `SEEN`, `REPEATED`.
    state: Box<[u8; Pid::COUNT]>,
}

impl Default for CcTracker {
    fn default() -> CcTracker {
        CcTracker {
            state: Box::new([0; Pid::COUNT]),
        }
    }
}

impl std::fmt::Debug for CcTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen = self.state.iter().filter(|s| **s & SEEN != 0).count();
        f.debug_struct("CcTracker")
            .field("pids_seen", &seen)
            .finish()
    }
}

impl CcTracker {
    pub fn new() -> CcTracker {
        CcTracker::default()
    }

    #[inline]
    pub fn check(&mut self, packet: &TsPacket<'_>) -> Continuity {
        let pid = packet.pid();
        if pid == Pid::NULL || !packet.has_payload() {
            return Continuity::Unchecked;
        }
        let Some(state) = self.state.get_mut(pid.index()) else {
            return Continuity::Unchecked;
        };
        step(state, packet)
    }

    /// Forgets a PID (e.g. when it leaves the PMT).
    pub fn reset(&mut self, pid: Pid) {
        if let Some(slot) = self.state.get_mut(pid.index()) {
            *slot = 0;
        }
    }
}

/// Checks a packet that carries a payload, on a PID other than the null
/// PID, against that PID's `state` (as kept by [`CcTracker`]; 0 for a PID
/// not seen yet), and updates it.
#[inline]
pub(crate) fn step(state: &mut u8, packet: &TsPacket<'_>) -> Continuity {
    let got = packet.continuity_counter();
    let previous = *state;
    *state = got.value() | SEEN;
    if packet.discontinuity() {
        return Continuity::Discontinuity;
    }
    if previous & SEEN == 0 {
        return Continuity::InOrder;
    }
    let last = Cc::new(previous);
    if got == last.next() {
        Continuity::InOrder
    } else if got == last && previous & REPEATED == 0 {
        *state |= REPEATED;
        Continuity::Duplicate
    } else {
        Continuity::Error {
            expected: last.next(),
            got,
        }
    }
}

/// Whether a packet with a payload and without `discontinuity_indicator`,
/// whose header byte 3 is `b3`, is [`Continuity::InOrder`] after `state`
/// as [`step`] would decide it: its counter is the one after the last, with
/// no repeat pending (a packet after a repeat is left to [`step`]). Then
/// [`in_order`] is the state after it. Never true for a PID not seen yet
/// (state 0).
#[inline(always)]
pub(crate) fn follows(state: u8, b3: u8) -> bool {
    state == SEEN | (b3.wrapping_sub(1) & 0x0F)
}

/// The state after an in-order packet with header byte 3 `b3`.
#[inline(always)]
pub(crate) fn in_order(b3: u8) -> u8 {
    SEEN | (b3 & 0x0F)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::packet::{PACKET_SIZE, PacketBuilder};

    fn check(t: &mut CcTracker, pid: u16, cc: u8, discontinuity: bool) -> Continuity {
        let mut b = PacketBuilder::new(Pid::new(pid));
        b.cc = Cc::new(cc);
        b.discontinuity = discontinuity;
        let mut out = [0; PACKET_SIZE];
        b.build(&[0; 184], &mut out);
        t.check(&TsPacket::new(&out).unwrap())
    }

    #[test]
    fn in_order_wraps() {
        let mut t = CcTracker::new();
        for i in 0..40u8 {
            assert_eq!(check(&mut t, 0x100, i % 16, false), Continuity::InOrder);
        }
    }

    #[test]
    fn one_duplicate_allowed_two_are_an_error() {
        let mut t = CcTracker::new();
        check(&mut t, 0x100, 3, false);
        assert_eq!(check(&mut t, 0x100, 3, false), Continuity::Duplicate);
        assert!(check(&mut t, 0x100, 3, false).is_error());
        assert_eq!(check(&mut t, 0x100, 4, false), Continuity::InOrder);
        assert_eq!(check(&mut t, 0x100, 4, false), Continuity::Duplicate);
    }

    #[test]
    fn loss_is_an_error_and_resynchronises() {
        let mut t = CcTracker::new();
        check(&mut t, 0x100, 3, false);
        assert_eq!(
            check(&mut t, 0x100, 6, false),
            Continuity::Error {
                expected: Cc::new(4),
                got: Cc::new(6)
            }
        );
        assert_eq!(check(&mut t, 0x100, 7, false), Continuity::InOrder);
    }

    #[test]
    fn discontinuity_indicator_allows_a_jump() {
        let mut t = CcTracker::new();
        check(&mut t, 0x100, 3, false);
        assert_eq!(check(&mut t, 0x100, 9, true), Continuity::Discontinuity);
        assert_eq!(check(&mut t, 0x100, 10, false), Continuity::InOrder);
    }

    #[test]
    fn pids_are_independent_and_null_is_exempt() {
        let mut t = CcTracker::new();
        check(&mut t, 0x100, 3, false);
        check(&mut t, 0x101, 9, false);
        assert_eq!(check(&mut t, 0x100, 4, false), Continuity::InOrder);
        assert_eq!(check(&mut t, 0x1FFF, 0, false), Continuity::Unchecked);
        assert_eq!(check(&mut t, 0x1FFF, 0, false), Continuity::Unchecked);
    }

    #[test]
    fn follows_agrees_with_step() {
        // Every state `step` can leave (none yet, or a counter seen, with or
        // without a repeat), every counter, with and without an adaptation
        // field (which `follows` does not look at).
        let states =
            std::iter::once(0).chain((0..16).flat_map(|cc| [SEEN | cc, SEEN | REPEATED | cc]));
        for state in states {
            for b3 in [0x10u8, 0x30]
                .into_iter()
                .flat_map(|c| (0..16).map(move |cc| c | cc))
            {
                let mut packet = [0xFFu8; PACKET_SIZE];
                packet[..5].copy_from_slice(&[0x47, 0x01, 0x00, b3, 0]);
                let packet = TsPacket::new(&packet).unwrap();
                let mut after = state;
                let stepped = step(&mut after, &packet);
                if follows(state, b3) {
                    assert_eq!(
                        stepped,
                        Continuity::InOrder,
                        "state {state:#04x} b3 {b3:#04x}"
                    );
                    assert_eq!(after, in_order(b3), "state {state:#04x} b3 {b3:#04x}");
                } else if stepped == Continuity::InOrder {
                    // Left to `step`: the first packet, or one after a repeat.
                    assert!(
                        state == 0 || state & REPEATED != 0,
                        "state {state:#04x} b3 {b3:#04x}"
                    );
                }
            }
        }
    }
}
