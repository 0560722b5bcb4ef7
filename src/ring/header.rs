//! The four header bytes of a stored packet, read without building a
//! [`crate::ts::TsPacket`]: the fan-out path only needs the PID, the
//! payload-unit-start flag and the continuity counter (ISO/IEC 13818-1
//! §2.4.3.2), and must not parse the adaptation field of every packet for
//! every consumer.
//!
//! ```text
//! sync(8) | TEI(1) PUSI(1) priority(1) PID[12..8](5) | PID[7..0](8) |
//! scrambling(2) adaptation_field_control(2) continuity_counter(4)
//! ```

use crate::ts::{Cc, Pid, TsPacket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub pid: Pid,
    pub payload_unit_start: bool,
    /// `adaptation_field_control` says a payload follows; only such packets
    /// advance the continuity counter.
    pub has_payload: bool,
    pub cc: Cc,
    /// Whether a receiver checks this packet's continuity counter at all:
    /// not for the null PID, nor for a packet with `transport_error_indicator`
    /// (its PID cannot be trusted) or one that is malformed, which receivers
    /// (and our demux) drop.
    pub checked: bool,
}

impl Header {
    /// `None` for fewer than four bytes (never the case for a stored packet,
    /// which is 188 bytes).
    pub fn read(packet: &[u8]) -> Option<Header> {
        let &[_, b1, b2, b3] = packet.first_chunk::<4>()?;
        let pid = Pid::new(u16::from(b1 & 0x1F) << 8 | u16::from(b2));
        Some(Header {
            pid,
            payload_unit_start: b1 & 0x40 != 0,
            has_payload: b3 & 0x10 != 0,
            cc: Cc::new(b3),
            checked: pid != Pid::NULL && b1 & 0x80 == 0 && TsPacket::new(packet).is_ok(),
        })
    }

    /// See [`Header::checked`].
    pub fn counts(&self) -> bool {
        self.checked
    }
}
