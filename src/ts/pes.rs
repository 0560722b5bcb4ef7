//! PES packet headers (ISO/IEC 13818-1 §2.4.3.6, Table 2-21).
//!
//! ```text
//! packet_start_code_prefix(24) = 0x000001  stream_id(8)  PES_packet_length(16)
//! -- for stream_ids that carry the optional header --
//! '10' scrambling(2) priority(1) data_alignment(1) copyright(1) original(1)
//! PTS_DTS_flags(2) ESCR(1) ES_rate(1) DSM_trick_mode(1) additional_copy_info(1)
//! PES_CRC(1) PES_extension(1)
//! PES_header_data_length(8)
//! PTS (5 bytes) when PTS_DTS_flags is 10 or 11; DTS (5 bytes) when 11; ...
//! ```
//!
//! Timestamps are 33 bits spread over 5 bytes with marker bits (§2.4.3.7):
//! `xxxx PTS[32..30] 1 | PTS[29..22] | PTS[21..15] 1 | PTS[14..7] | PTS[6..0] 1`.

use thiserror::Error;

use super::types::{Pid, Timestamp};

/// Bytes before the optional header fields: start code, stream_id, length,
/// two flag bytes, header data length.
pub const FIXED_HEADER: usize = 9;
/// The largest possible PES header: fixed part plus 255 bytes of header data.
pub const MAX_HEADER: usize = FIXED_HEADER + 255;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PesError {
    #[error("PID {pid}: PES does not start with 00 00 01 (got {got:02x?})")]
    NoStartCode { pid: Pid, got: [u8; 3] },
    #[error("PID {pid}: PES header flags byte {flags:#04x} lacks the '10' marker")]
    BadMarker { pid: Pid, flags: u8 },
    #[error(
        "PID {pid}: PES_header_data_length {declared} is too short for its flags (needs {needed})"
    )]
    HeaderTooShort {
        pid: Pid,
        declared: u8,
        needed: usize,
    },
}

/// The parsed header of one PES packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesHeader {
    pub stream_id: u8,
    /// `PES_packet_length`; 0 means unbounded (allowed for video in TS).
    pub packet_length: u16,
    pub data_alignment: bool,
    pub pts: Option<Timestamp>,
    pub dts: Option<Timestamp>,
    /// Bytes of header, i.e. the offset of the elementary stream payload.
    pub header_len: usize,
}

impl PesHeader {
    /// Whether `stream_id` carries the optional header (Table 2-21's list of
    /// exceptions: program_stream_map, padding, private_stream_2, ECM, EMM,
    /// program_stream_directory, DSMCC, H.222.1 type E).
    #[inline]
    pub fn has_optional_header(stream_id: u8) -> bool {
        // Audio and video streams (0xC0–0xEF), the usual ones, first: a
        // range test instead of the table a match over the exceptions
        // compiles to.
        if (0xC0..=0xEF).contains(&stream_id) {
            return true;
        }
        !matches!(
            stream_id,
            0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
        )
    }

    /// Parses a header from the start of a PES packet. `Ok(None)` means more
    /// bytes are needed (the header continues in the next TS packet).
    // Inlined so the header comes back in registers: returned through
    // memory it cost a store-forwarding stall on every PES packet.
    #[inline(always)]
    pub fn parse(pid: Pid, bytes: &[u8]) -> Result<Option<PesHeader>, PesError> {
        let Some(&[p0, p1, p2, stream_id, len_hi, len_lo]) = bytes.first_chunk::<6>() else {
            // Check what we have of the start code so garbage fails early.
            if bytes.iter().zip([0u8, 0, 1]).any(|(a, b)| *a != b) {
                let mut got = [0u8; 3];
                for (g, b) in got.iter_mut().zip(bytes) {
                    *g = *b;
                }
                return Err(PesError::NoStartCode { pid, got });
            }
            return Ok(None);
        };
        if [p0, p1, p2] != [0, 0, 1] {
            return Err(PesError::NoStartCode {
                pid,
                got: [p0, p1, p2],
            });
        }
        let packet_length = u16::from_be_bytes([len_hi, len_lo]);
        let mut header = PesHeader {
            stream_id,
            packet_length,
            data_alignment: false,
            pts: None,
            dts: None,
            header_len: 6,
        };
        if !Self::has_optional_header(stream_id) {
            return Ok(Some(header));
        }
        let Some(&[.., flags1, flags2, data_len]) = bytes.first_chunk::<FIXED_HEADER>() else {
            return Ok(None);
        };
        if flags1 & 0xC0 != 0x80 {
            return Err(PesError::BadMarker { pid, flags: flags1 });
        }
        header.data_alignment = flags1 & 0x04 != 0;
        header.header_len = FIXED_HEADER + usize::from(data_len);
        let needed = match flags2 >> 6 {
            0b10 => 5,
            0b11 => 10,
            _ => 0,
        };
        if usize::from(data_len) < needed {
            return Err(PesError::HeaderTooShort {
                pid,
                declared: data_len,
                needed,
            });
        }
        if bytes.len() < header.header_len {
            return Ok(None);
        }
        let optional = bytes
            .get(FIXED_HEADER..FIXED_HEADER + needed)
            .unwrap_or_default();
        if let Some(pts) = optional.first_chunk::<5>() {
            header.pts = Some(read_timestamp(pts));
        }
        if let Some(dts) = optional.get(5..).and_then(<[u8]>::first_chunk::<5>) {
            header.dts = Some(read_timestamp(dts));
        }
        Ok(Some(header))
    }

    /// The decoding timestamp: DTS when present, else PTS.
    pub fn decode_time(&self) -> Option<Timestamp> {
        self.dts.or(self.pts)
    }
}

/// Decodes a 5-byte PTS/DTS field. Marker bits are not enforced: muxers
/// in the wild get them wrong and the value is still meaningful.
#[inline]
pub fn read_timestamp(b: &[u8; 5]) -> Timestamp {
    let [b0, b1, b2, b3, b4] = *b;
    Timestamp::new(
        u64::from(b0 >> 1 & 0x07) << 30
            | u64::from(b1) << 22
            | u64::from(b2 >> 1) << 15
            | u64::from(b3) << 7
            | u64::from(b4 >> 1),
    )
}

/// Encodes a PTS/DTS field with the given 4-bit prefix (`0b0010` for a lone
/// PTS, `0b0011`/`0b0001` for PTS/DTS pairs).
pub fn write_timestamp(prefix: u8, ts: Timestamp) -> [u8; 5] {
    let t = ts.ticks();
    [
        prefix << 4 | ((t >> 29) as u8 & 0x0E) | 1,
        (t >> 22) as u8,
        ((t >> 14) as u8 & 0xFE) | 1,
        (t >> 7) as u8,
        ((t << 1) as u8 & 0xFE) | 1,
    ]
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(pts: Option<u64>, dts: Option<u64>) -> Vec<u8> {
        let mut h = vec![0, 0, 1, 0xE0, 0, 0, 0x84];
        let (flags, data): (u8, Vec<u8>) = match (pts, dts) {
            (Some(p), Some(d)) => (
                0xC0,
                [
                    write_timestamp(3, Timestamp::new(p)),
                    write_timestamp(1, Timestamp::new(d)),
                ]
                .concat(),
            ),
            (Some(p), None) => (0x80, write_timestamp(2, Timestamp::new(p)).to_vec()),
            _ => (0, vec![]),
        };
        h.push(flags);
        h.push(data.len() as u8);
        h.extend(data);
        h
    }

    #[test]
    fn pts_and_dts() {
        let h = header(Some(0x1_FFFF_FFFF), Some(123_456));
        let parsed = PesHeader::parse(Pid::new(0x100), &h).unwrap().unwrap();
        assert_eq!(parsed.stream_id, 0xE0);
        assert!(parsed.data_alignment);
        assert_eq!(parsed.pts, Some(Timestamp::new(0x1_FFFF_FFFF)));
        assert_eq!(parsed.dts, Some(Timestamp::new(123_456)));
        assert_eq!(parsed.header_len, 19);
    }

    #[test]
    fn incomplete_header_asks_for_more() {
        let h = header(Some(5), None);
        for cut in 0..h.len() {
            assert_eq!(
                PesHeader::parse(Pid::new(1), &h[..cut]),
                Ok(None),
                "cut {cut}"
            );
        }
        assert!(PesHeader::parse(Pid::new(1), &h).unwrap().is_some());
    }

    #[test]
    fn bad_start_code_and_marker() {
        assert!(matches!(
            PesHeader::parse(Pid::new(1), &[0, 1]),
            Err(PesError::NoStartCode { .. })
        ));
        let mut h = header(Some(5), None);
        h[6] = 0x40;
        assert!(matches!(
            PesHeader::parse(Pid::new(1), &h),
            Err(PesError::BadMarker { .. })
        ));
        let mut h = header(Some(5), Some(4));
        h[8] = 3;
        assert!(matches!(
            PesHeader::parse(Pid::new(1), &h),
            Err(PesError::HeaderTooShort { needed: 10, .. })
        ));
    }

    #[test]
    fn padding_stream_has_no_optional_header() {
        let parsed = PesHeader::parse(Pid::new(1), &[0, 0, 1, 0xBE, 0, 10])
            .unwrap()
            .unwrap();
        assert_eq!(parsed.header_len, 6);
        assert_eq!(parsed.pts, None);
    }

    proptest! {
        #[test]
        fn timestamps_round_trip(t in 0u64..Timestamp::MODULUS) {
            prop_assert_eq!(read_timestamp(&write_timestamp(2, Timestamp::new(t))), Timestamp::new(t));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some(h)) = PesHeader::parse(Pid::new(1), &bytes) {
                prop_assert!(h.header_len <= MAX_HEADER);
            }
        }
    }
}
