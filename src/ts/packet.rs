//! A checked, zero-copy view of one 188-byte transport packet.
//!
//! Header layout (ISO/IEC 13818-1 §2.4.3.2, Table 2-2):
//!
//! ```text
//! byte 0: sync_byte 0x47
//! byte 1: transport_error_indicator(1) payload_unit_start_indicator(1)
//!         transport_priority(1) PID[12:8](5)
//! byte 2: PID[7:0]
//! byte 3: transport_scrambling_control(2) adaptation_field_control(2)
//!         continuity_counter(4)
//! ```
//!
//! The adaptation field (§2.4.3.4, Table 2-6) follows when
//! `adaptation_field_control` has bit 1 set; its length byte and every
//! optional field inside it are bounds-checked once, in [`TsPacket::new`], so
//! the accessors afterwards cannot fail.

use thiserror::Error;

use super::types::{Cc, Pcr, Pid};

pub const PACKET_SIZE: usize = 188;
pub const SYNC_BYTE: u8 = 0x47;
const HEADER_SIZE: usize = 4;

/// Why a 188-byte block is not a usable transport packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("packet is {len} bytes, expected {PACKET_SIZE}")]
    WrongLength { len: usize },
    #[error("packet starts with {got:#04x}, expected sync byte 0x47")]
    NoSync { got: u8 },
    #[error("PID {pid}: adaptation_field_length {len} exceeds the 183 bytes after the header")]
    AdaptationFieldTooLong { pid: Pid, len: u8 },
    #[error(
        "PID {pid}: adaptation field flags need {needed} bytes but adaptation_field_length is {len}"
    )]
    AdaptationFieldTruncated { pid: Pid, len: u8, needed: usize },
}

/// `adaptation_field_control` (Table 2-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptationControl {
    /// `00`: reserved; decoders discard such packets.
    Reserved,
    PayloadOnly,
    AdaptationOnly,
    AdaptationAndPayload,
}

/// A transport packet whose header and adaptation field have been validated.
#[derive(Clone, Copy)]
pub struct TsPacket<'a> {
    bytes: &'a [u8; PACKET_SIZE],
    /// Offset of the payload; `PACKET_SIZE` when there is none.
    payload_offset: u8,
    /// The adaptation field's flags byte, 0 when there is no field (or it is
    /// empty): kept so the per-packet checks (discontinuity, PCR, random
    /// access) need not find the field again.
    af_flags: u8,
}

impl<'a> TsPacket<'a> {
    /// Validates `bytes` as one transport packet.
    pub fn new(bytes: &'a [u8]) -> Result<TsPacket<'a>, PacketError> {
        let bytes: &[u8; PACKET_SIZE] = bytes
            .try_into()
            .map_err(|_| PacketError::WrongLength { len: bytes.len() })?;
        TsPacket::from_array(bytes)
    }

    /// Validates a fixed-size block as one transport packet.
    #[inline]
    pub fn from_array(bytes: &'a [u8; PACKET_SIZE]) -> Result<TsPacket<'a>, PacketError> {
        let &[sync, _, _, b3, len, first, ..] = bytes;
        if sync != SYNC_BYTE {
            return Err(PacketError::NoSync { got: sync });
        }
        let control = (b3 >> 4) & 0x03;
        if control == 0b01 {
            return Ok(TsPacket::payload_only(bytes));
        }
        if control == 0b00 {
            return Ok(TsPacket {
                bytes,
                payload_offset: PACKET_SIZE as u8,
                af_flags: 0,
            });
        }
        // The flags byte is the field's first, when it is not empty.
        let af_flags = if len == 0 { 0 } else { first };
        let needs = FIXED_NEEDS
            .get(usize::from(af_flags & 0x1F))
            .copied()
            .unwrap_or(u8::MAX);
        if usize::from(len) > PACKET_SIZE - HEADER_SIZE - 1 || (len > 0 && needs > len) {
            TsPacket::check_field(bytes)?;
        }
        Ok(TsPacket {
            bytes,
            // ≤ 5 + 183 = 188.
            payload_offset: if control == 0b11 {
                HEADER_SIZE as u8 + 1 + len
            } else {
                PACKET_SIZE as u8
            },
            af_flags,
        })
    }

    /// The full check of an adaptation field that the quick test in
    /// [`TsPacket::from_array`] could not pass: too long, truncated, or with
    /// variable-length parts.
    #[cold]
    #[inline(never)]
    fn check_field(bytes: &[u8; PACKET_SIZE]) -> Result<(), PacketError> {
        let &[_, b1, b2, _, len, ..] = bytes;
        let pid = Pid::new(u16::from(b1 & 0x1F) << 8 | u16::from(b2));
        let field = bytes
            .get(HEADER_SIZE + 1..HEADER_SIZE + 1 + usize::from(len))
            .ok_or(PacketError::AdaptationFieldTooLong { pid, len })?;
        AdaptationField::check(field).map_err(|needed| PacketError::AdaptationFieldTruncated {
            pid,
            len,
            needed,
        })
    }

    /// The view of a packet its caller has checked to start with the sync
    /// byte and to have `adaptation_field_control` `01` (payload only): such
    /// a packet is always well formed, with its payload after the header.
    #[inline(always)]
    fn payload_only(bytes: &'a [u8; PACKET_SIZE]) -> TsPacket<'a> {
        TsPacket {
            bytes,
            payload_offset: HEADER_SIZE as u8,
            af_flags: 0,
        }
    }

    /// The view of a packet that needs no checking beyond a look at its
    /// first six bytes, and whose header holds nothing a demux acts on per
    /// packet beyond the PID, PUSI and counter: the sync byte, not
    /// scrambled, then payload only, or an adaptation field that is empty
    /// or has no flags but random access and priority (so no discontinuity,
    /// no PCR; the rest is stuffing, §2.4.3.5). `None` for any other packet:
    /// [`TsPacket::from_array`] takes those.
    #[inline(always)]
    pub(crate) fn plain(bytes: &'a [u8; PACKET_SIZE]) -> Option<TsPacket<'a>> {
        let &[sync, _, _, b3, len, flags, ..] = bytes;
        if sync != SYNC_BYTE {
            return None;
        }
        match b3 & 0xF0 {
            0x10 => Some(TsPacket::payload_only(bytes)),
            0x30 if usize::from(len) < PACKET_SIZE - HEADER_SIZE
                && (len == 0 || flags & !(FLAG_RANDOM_ACCESS | FLAG_ES_PRIORITY) == 0) =>
            {
                Some(TsPacket {
                    bytes,
                    payload_offset: HEADER_SIZE as u8 + 1 + len,
                    af_flags: if len == 0 { 0 } else { flags },
                })
            }
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> &'a [u8; PACKET_SIZE] {
        self.bytes
    }

    #[inline]
    pub fn transport_error(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    /// `payload_unit_start_indicator`: a PES packet or PSI section starts here.
    #[inline]
    pub fn payload_unit_start(&self) -> bool {
        self.bytes[1] & 0x40 != 0
    }

    pub fn transport_priority(&self) -> bool {
        self.bytes[1] & 0x20 != 0
    }

    #[inline]
    pub fn pid(&self) -> Pid {
        Pid::new(u16::from(self.bytes[1] & 0x1F) << 8 | u16::from(self.bytes[2]))
    }

    /// `transport_scrambling_control`: 0 means not scrambled.
    #[inline]
    pub fn scrambling(&self) -> u8 {
        self.bytes[3] >> 6
    }

    pub fn adaptation_control(&self) -> AdaptationControl {
        match (self.bytes[3] >> 4) & 0x03 {
            0b00 => AdaptationControl::Reserved,
            0b01 => AdaptationControl::PayloadOnly,
            0b10 => AdaptationControl::AdaptationOnly,
            _ => AdaptationControl::AdaptationAndPayload,
        }
    }

    #[inline]
    pub fn continuity_counter(&self) -> Cc {
        Cc::new(self.bytes[3])
    }

    /// Whether the packet carries a payload, even an empty one; only such
    /// packets advance the continuity counter (§2.4.3.3).
    #[inline]
    pub fn has_payload(&self) -> bool {
        self.bytes[3] & 0x10 != 0
    }

    /// The adaptation field, without its length byte; `None` when absent or
    /// empty (length 0).
    #[inline]
    pub fn adaptation_field(&self) -> Option<AdaptationField<'a>> {
        if self.bytes[3] & 0x20 == 0 {
            return None;
        }
        let len = usize::from(self.bytes[4]);
        let field = self.bytes.get(5..5 + len)?;
        if field.is_empty() {
            None
        } else {
            Some(AdaptationField { bytes: field })
        }
    }

    /// The payload bytes; empty when the packet has none.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.bytes
            .get(usize::from(self.payload_offset)..)
            .unwrap_or_default()
    }

    /// Offset of the payload in the packet (188 when there is none).
    pub fn payload_offset(&self) -> usize {
        usize::from(self.payload_offset)
    }

    /// Shortcut for the adaptation field's PCR.
    #[inline]
    pub fn pcr(&self) -> Option<Pcr> {
        if self.af_flags & FLAG_PCR == 0 {
            return None;
        }
        // The PCR is the first optional field (after the length and flags
        // bytes), and the field was checked to hold it.
        self.bytes.get(6..12).and_then(read_pcr)
    }

    /// Shortcut for the adaptation field's discontinuity indicator.
    #[inline]
    pub fn discontinuity(&self) -> bool {
        self.af_flags & FLAG_DISCONTINUITY != 0
    }

    /// Shortcut for the adaptation field's random access indicator.
    #[inline]
    pub fn random_access(&self) -> bool {
        self.af_flags & FLAG_RANDOM_ACCESS != 0
    }
}

impl std::fmt::Debug for TsPacket<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsPacket")
            .field("pid", &self.pid())
            .field("pusi", &self.payload_unit_start())
            .field("cc", &self.continuity_counter().value())
            .field("adaptation_field", &self.adaptation_field())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// The adaptation field of a packet (§2.4.3.4), without its length byte.
///
/// ```text
/// byte 0: discontinuity(1) random_access(1) es_priority(1) PCR_flag(1)
///         OPCR_flag(1) splicing_point_flag(1) private_data_flag(1)
///         extension_flag(1)
/// then, in this order, each when its flag is set:
///   PCR 6 bytes, OPCR 6 bytes, splice_countdown 1 byte (signed),
///   transport_private_data_length 1 byte + data,
///   adaptation_field_extension_length 1 byte + extension
/// then stuffing bytes (0xFF).
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AdaptationField<'a> {
    bytes: &'a [u8],
}

const FLAG_DISCONTINUITY: u8 = 0x80;
const FLAG_RANDOM_ACCESS: u8 = 0x40;
const FLAG_ES_PRIORITY: u8 = 0x20;
const FLAG_PCR: u8 = 0x10;
const FLAG_OPCR: u8 = 0x08;
const FLAG_SPLICING_POINT: u8 = 0x04;
const FLAG_PRIVATE_DATA: u8 = 0x02;
const FLAG_EXTENSION: u8 = 0x01;

/// Bytes an adaptation field needs for its flags byte and the fixed-size
/// fields its flags announce (PCR, OPCR, splice countdown), by the flags'
/// low 5 bits; `u8::MAX` when a variable-length part (private data,
/// extension) is announced, whose size takes a walk to find.
#[allow(
    clippy::indexing_slicing,
    reason = "const evaluation over a 32-entry table, flags < 32"
)]
const FIXED_NEEDS: [u8; 32] = {
    let mut needs = [0u8; 32];
    let mut flags = 0;
    while flags < 32 {
        needs[flags] = if flags as u8 & (FLAG_PRIVATE_DATA | FLAG_EXTENSION) != 0 {
            u8::MAX
        } else {
            1 + if flags as u8 & FLAG_PCR != 0 { 6 } else { 0 }
                + if flags as u8 & FLAG_OPCR != 0 { 6 } else { 0 }
                + if flags as u8 & FLAG_SPLICING_POINT != 0 {
                    1
                } else {
                    0
                }
        };
        flags += 1;
    }
    needs
};

/// Offsets of the optional fields inside an adaptation field.
#[derive(Default)]
struct Layout {
    pcr: Option<usize>,
    opcr: Option<usize>,
    splice_countdown: Option<usize>,
    private_data: Option<(usize, usize)>,
    extension: Option<(usize, usize)>,
}

impl<'a> AdaptationField<'a> {
    /// Parses an adaptation field body (after the length byte), checking
    /// every optional field fits.
    pub fn parse(bytes: &'a [u8]) -> Result<AdaptationField<'a>, usize> {
        Self::check(bytes)?;
        Ok(AdaptationField { bytes })
    }

    /// Returns the number of bytes the flags require when `bytes` is too short.
    #[inline]
    fn check(bytes: &[u8]) -> Result<(), usize> {
        // Fast path for fields without the two variable-length parts (the
        // usual flags, or PCR): their size is a sum of the flags. Anything
        // else, or a field too short, takes the full walk, which also finds
        // the size to report.
        if let Some(&flags) = bytes.first()
            && flags & (FLAG_PRIVATE_DATA | FLAG_EXTENSION) == 0
        {
            let need = 1
                + if flags & FLAG_PCR != 0 { 6 } else { 0 }
                + if flags & FLAG_OPCR != 0 { 6 } else { 0 }
                + usize::from(flags & FLAG_SPLICING_POINT != 0);
            if need <= bytes.len() {
                return Ok(());
            }
        }
        Self::layout(bytes).map(|_| ())
    }

    #[inline]
    fn layout(bytes: &[u8]) -> Result<Layout, usize> {
        let Some(&flags) = bytes.first() else {
            return Ok(Layout::default());
        };
        let mut layout = Layout::default();
        let mut at = 1;
        let need = |at: &mut usize, n: usize| -> Result<usize, usize> {
            let start = *at;
            *at += n;
            if *at > bytes.len() {
                Err(*at)
            } else {
                Ok(start)
            }
        };
        if flags & FLAG_PCR != 0 {
            layout.pcr = Some(need(&mut at, 6)?);
        }
        if flags & FLAG_OPCR != 0 {
            layout.opcr = Some(need(&mut at, 6)?);
        }
        if flags & FLAG_SPLICING_POINT != 0 {
            layout.splice_countdown = Some(need(&mut at, 1)?);
        }
        if flags & FLAG_PRIVATE_DATA != 0 {
            let len_at = need(&mut at, 1)?;
            let len = usize::from(bytes.get(len_at).copied().unwrap_or(0));
            layout.private_data = Some((need(&mut at, len)?, len));
        }
        if flags & FLAG_EXTENSION != 0 {
            let len_at = need(&mut at, 1)?;
            let len = usize::from(bytes.get(len_at).copied().unwrap_or(0));
            layout.extension = Some((need(&mut at, len)?, len));
        }
        Ok(layout)
    }

    #[inline]
    fn flags(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }

    fn checked_layout(&self) -> Layout {
        // Validated at construction; an impossible failure yields no fields.
        Self::layout(self.bytes).unwrap_or_default()
    }

    /// The raw field, without the length byte.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    #[inline]
    pub fn discontinuity(&self) -> bool {
        self.flags() & FLAG_DISCONTINUITY != 0
    }

    #[inline]
    pub fn random_access(&self) -> bool {
        self.flags() & FLAG_RANDOM_ACCESS != 0
    }

    pub fn es_priority(&self) -> bool {
        self.flags() & FLAG_ES_PRIORITY != 0
    }

    #[inline]
    pub fn pcr(&self) -> Option<Pcr> {
        if self.flags() & FLAG_PCR == 0 {
            return None;
        }
        // PCR is always the first optional field.
        self.bytes.get(1..7).and_then(read_pcr)
    }

    pub fn opcr(&self) -> Option<Pcr> {
        let at = self.checked_layout().opcr?;
        self.bytes.get(at..at + 6).and_then(read_pcr)
    }

    /// `splice_countdown`: packets of this PID until a splicing point.
    pub fn splice_countdown(&self) -> Option<i8> {
        let at = self.checked_layout().splice_countdown?;
        self.bytes.get(at).map(|&b| b as i8)
    }

    pub fn private_data(&self) -> Option<&'a [u8]> {
        let (at, len) = self.checked_layout().private_data?;
        self.bytes.get(at..at + len)
    }

    /// The adaptation field extension body, after its length byte.
    pub fn extension(&self) -> Option<&'a [u8]> {
        let (at, len) = self.checked_layout().extension?;
        self.bytes.get(at..at + len)
    }
}

impl std::fmt::Debug for AdaptationField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdaptationField")
            .field("discontinuity", &self.discontinuity())
            .field("random_access", &self.random_access())
            .field("pcr", &self.pcr())
            .field("opcr", &self.opcr())
            .field("splice_countdown", &self.splice_countdown())
            .finish()
    }
}

/// Reads a 6-byte PCR field: 33-bit base, 6 reserved bits, 9-bit extension.
#[inline]
fn read_pcr(b: &[u8]) -> Option<Pcr> {
    let &[b0, b1, b2, b3, b4, b5] = b else {
        return None;
    };
    let base = u64::from(b0) << 25
        | u64::from(b1) << 17
        | u64::from(b2) << 9
        | u64::from(b3) << 1
        | u64::from(b4) >> 7;
    let extension = u16::from(b4 & 0x01) << 8 | u16::from(b5);
    Some(Pcr::new(base, extension))
}

/// Encodes a PCR into its 6-byte field, reserved bits set to 1.
pub fn write_pcr(pcr: Pcr) -> [u8; 6] {
    let base = pcr.base();
    let ext = pcr.extension();
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7E | (ext >> 8) as u8 & 0x01,
        ext as u8,
    ]
}

/// Builds packets for tests, fuzzing and (later) the output splicer.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    pub pid: Pid,
    pub pusi: bool,
    pub cc: Cc,
    pub discontinuity: bool,
    pub random_access: bool,
    pub pcr: Option<Pcr>,
}

impl PacketBuilder {
    pub fn new(pid: Pid) -> PacketBuilder {
        PacketBuilder {
            pid,
            pusi: false,
            cc: Cc::default(),
            discontinuity: false,
            random_access: false,
            pcr: None,
        }
    }

    /// Writes a packet carrying as much of `payload` as fits (stuffing the
    /// adaptation field when it is shorter) and returns the bytes consumed.
    #[allow(
        clippy::indexing_slicing,
        reason = "every offset is derived from PACKET_SIZE and the at most 7-byte adaptation field built here"
    )]
    pub fn build(&self, payload: &[u8], out: &mut [u8; PACKET_SIZE]) -> usize {
        let mut af = Vec::with_capacity(8);
        let flags = if self.discontinuity {
            FLAG_DISCONTINUITY
        } else {
            0
        } | if self.random_access {
            FLAG_RANDOM_ACCESS
        } else {
            0
        } | if self.pcr.is_some() { FLAG_PCR } else { 0 };
        if flags != 0 {
            af.push(flags);
        }
        if let Some(pcr) = self.pcr {
            af.extend_from_slice(&write_pcr(pcr));
        }
        let room = PACKET_SIZE - HEADER_SIZE - if af.is_empty() { 0 } else { 1 + af.len() };
        let take = payload.len().min(room);
        let need_af = !af.is_empty() || take < PACKET_SIZE - HEADER_SIZE;
        let control: u8 = if need_af { 0x30 } else { 0x10 };
        out.fill(0xFF);
        out[0] = SYNC_BYTE;
        out[1] = u8::from(self.pusi) << 6 | (self.pid.value() >> 8) as u8;
        out[2] = self.pid.value() as u8;
        out[3] = control | self.cc.value();
        let mut at = HEADER_SIZE;
        if need_af {
            let af_len = PACKET_SIZE - HEADER_SIZE - 1 - take;
            out[at] = af_len as u8;
            at += 1;
            if af_len > 0 {
                let body = &mut out[at..at + af_len];
                if af.is_empty() {
                    body[0] = 0;
                } else {
                    body[..af.len()].copy_from_slice(&af);
                }
            }
            at += af_len;
        }
        out[at..at + take].copy_from_slice(&payload[..take]);
        take
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(header: [u8; 4], rest: &[u8]) -> [u8; PACKET_SIZE] {
        let mut p = [0xFFu8; PACKET_SIZE];
        p[..4].copy_from_slice(&header);
        p[4..4 + rest.len()].copy_from_slice(rest);
        p
    }

    #[test]
    fn header_fields() {
        let p = packet([0x47, 0xE1, 0x23, 0x9A], &[]);
        let p = TsPacket::new(&p).unwrap();
        assert!(p.transport_error());
        assert!(p.payload_unit_start());
        assert!(p.transport_priority());
        assert_eq!(p.pid(), Pid::new(0x123));
        assert_eq!(p.scrambling(), 2);
        assert_eq!(p.adaptation_control(), AdaptationControl::PayloadOnly);
        assert_eq!(p.continuity_counter(), Cc::new(0xA));
        assert_eq!(p.payload().len(), 184);
        assert!(p.adaptation_field().is_none());
    }

    #[test]
    fn rejects_bad_sync_and_length() {
        let p = packet([0x46, 0, 0, 0x10], &[]);
        assert_eq!(
            TsPacket::new(&p).unwrap_err(),
            PacketError::NoSync { got: 0x46 }
        );
        assert_eq!(
            TsPacket::new(&p[..100]).unwrap_err(),
            PacketError::WrongLength { len: 100 }
        );
    }

    #[test]
    fn adaptation_field_with_pcr_opcr_splice_private_extension() {
        let pcr = Pcr::new(0x1_2345_6789, 0x155);
        let opcr = Pcr::new(7, 299);
        let mut af = vec![0xDF]; // every flag
        af.extend_from_slice(&write_pcr(pcr));
        af.extend_from_slice(&write_pcr(opcr));
        af.push(0xFE); // splice_countdown = -2
        af.extend_from_slice(&[2, 0xAA, 0xBB]);
        af.extend_from_slice(&[1, 0x3F]);
        let mut rest = vec![af.len() as u8];
        rest.extend_from_slice(&af);
        let p = packet([0x47, 0x01, 0x00, 0x30], &rest);
        let p = TsPacket::new(&p).unwrap();
        let f = p.adaptation_field().unwrap();
        assert!(f.discontinuity() && f.random_access() && !f.es_priority());
        assert_eq!(f.pcr(), Some(pcr));
        assert_eq!(f.opcr(), Some(opcr));
        assert_eq!(f.splice_countdown(), Some(-2));
        assert_eq!(f.private_data(), Some(&[0xAA, 0xBB][..]));
        assert_eq!(f.extension(), Some(&[0x3F][..]));
        assert_eq!(p.payload_offset(), 5 + af.len());
    }

    #[test]
    fn truncated_adaptation_field_is_an_error() {
        // PCR flag set, but only 3 bytes of field.
        let p = packet([0x47, 0x01, 0x00, 0x30], &[3, 0x10, 0, 0]);
        assert!(matches!(
            TsPacket::new(&p),
            Err(PacketError::AdaptationFieldTruncated { needed: 7, .. })
        ));
        // Private data length pointing past the field.
        let p = packet([0x47, 0x01, 0x00, 0x30], &[3, 0x02, 50, 0]);
        assert!(TsPacket::new(&p).is_err());
        // Length byte larger than the packet.
        let p = packet([0x47, 0x01, 0x00, 0x20], &[184]);
        assert!(matches!(
            TsPacket::new(&p),
            Err(PacketError::AdaptationFieldTooLong { len: 184, .. })
        ));
    }

    #[test]
    fn adaptation_only_has_no_payload() {
        let p = packet([0x47, 0x01, 0x00, 0x20], &[183, 0x00]);
        let p = TsPacket::new(&p).unwrap();
        assert!(!p.has_payload());
        assert!(p.payload().is_empty());
        let p = packet([0x47, 0x01, 0x00, 0x30], &[183, 0x00]);
        let p = TsPacket::new(&p).unwrap();
        assert!(p.has_payload() && p.payload().is_empty());
    }

    /// Whenever `plain` takes a packet, it sees what `from_array` does, and
    /// nothing `plain` promises to leave out: every control, scrambling,
    /// length and flags byte.
    #[test]
    fn plain_agrees_with_from_array() {
        for b3 in (0..16u8).map(|high| high << 4 | 0x05) {
            for len in 0..=u8::MAX {
                for flags in 0..=u8::MAX {
                    let mut bytes = [0xFFu8; PACKET_SIZE];
                    bytes[..6].copy_from_slice(&[SYNC_BYTE, 0x01, 0x00, b3, len, flags]);
                    let Some(plain) = TsPacket::plain(&bytes) else {
                        continue;
                    };
                    let checked = TsPacket::from_array(&bytes).unwrap();
                    assert_eq!(
                        (plain.payload_offset(), plain.af_flags),
                        (checked.payload_offset(), checked.af_flags),
                        "{b3:#04x} {len} {flags:#04x}"
                    );
                    assert!(plain.has_payload() && plain.scrambling() == 0);
                    assert!(!plain.discontinuity() && plain.pcr().is_none());
                }
            }
        }
        let mut bytes = [0u8; PACKET_SIZE];
        bytes[..4].copy_from_slice(&[0x46, 0x01, 0x00, 0x10]);
        assert!(TsPacket::plain(&bytes).is_none());
    }

    proptest! {
        /// `from_array` checks what the plain walk of the adaptation field
        /// does, and finds the same payload and flags.
        #[test]
        fn from_array_agrees_with_the_field_walk(
            b3 in (prop_oneof![Just(0x20u8), Just(0x30), any::<u8>()], 0u8..16)
                .prop_map(|(control, cc)| control | cc),
            len in prop_oneof![0u8..20, 180u8..186, any::<u8>()],
            field in proptest::collection::vec(prop_oneof![0u8..20, any::<u8>()], PACKET_SIZE - 5),
        ) {
            let mut bytes = [0u8; PACKET_SIZE];
            bytes[..5].copy_from_slice(&[SYNC_BYTE, 0x01, 0x00, b3, len]);
            bytes[5..].copy_from_slice(&field);
            let walked = match (b3 >> 4) & 0x03 {
                0b01 => Ok((HEADER_SIZE, 0)),
                0b00 => Ok((PACKET_SIZE, 0)),
                control => match bytes.get(5..5 + usize::from(len)) {
                    None => Err(PacketError::AdaptationFieldTooLong { pid: Pid::new(0x100), len }),
                    Some(field) => AdaptationField::parse(field)
                        .map(|f| {
                            let offset = if control == 0b11 { 5 + usize::from(len) } else { PACKET_SIZE };
                            (offset, f.as_bytes().first().copied().unwrap_or(0))
                        })
                        .map_err(|needed| PacketError::AdaptationFieldTruncated {
                            pid: Pid::new(0x100),
                            len,
                            needed,
                        }),
                },
            };
            let checked = TsPacket::from_array(&bytes).map(|p| (p.payload_offset(), p.af_flags));
            prop_assert_eq!(checked, walked);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), PACKET_SIZE)) {
            if let Ok(p) = TsPacket::new(&bytes) {
                prop_assert!(p.payload_offset() <= PACKET_SIZE);
                let _ = (p.pcr(), p.adaptation_field().map(|f| (f.opcr(), f.private_data(), f.extension(), f.splice_countdown())));
            }
        }

        #[test]
        fn builder_round_trips(pid in 0u16..0x1FFF, cc in 0u8..16, pusi: bool, disc: bool,
                               pcr in proptest::option::of(0u64..Pcr::MODULUS),
                               payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = PacketBuilder::new(Pid::new(pid));
            b.cc = Cc::new(cc);
            b.pusi = pusi;
            b.discontinuity = disc;
            b.pcr = pcr.map(Pcr::from_27mhz);
            let mut out = [0u8; PACKET_SIZE];
            let n = b.build(&payload, &mut out);
            let p = TsPacket::new(&out).unwrap();
            prop_assert_eq!(p.pid(), Pid::new(pid));
            prop_assert_eq!(p.continuity_counter(), Cc::new(cc));
            prop_assert_eq!(p.payload_unit_start(), pusi);
            prop_assert_eq!(p.discontinuity(), disc);
            prop_assert_eq!(p.pcr(), pcr.map(Pcr::from_27mhz));
            prop_assert_eq!(p.payload(), &payload[..n]);
            prop_assert!(n == payload.len() || p.payload().len() == n);
        }
    }
}
