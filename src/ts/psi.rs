//! Program-specific information: section reassembly, CRC-32, PAT and PMT
//! (ISO/IEC 13818-1 §2.4.4).
//!
//! A section starts in a packet with `payload_unit_start_indicator` set, at
//! the offset given by the `pointer_field` (the first payload byte); the bytes
//! before it finish the previous section. Several sections may follow one
//! another in one packet, and one section may span many packets. Section
//! header (§2.4.4.3, Table 2-30):
//!
//! ```text
//! table_id(8) section_syntax_indicator(1) '0'(1) reserved(2) section_length(12)
//! -- long form (syntax indicator = 1) --
//! table_id_extension(16) reserved(2) version_number(5) current_next_indicator(1)
//! section_number(8) last_section_number(8) ... CRC_32(32)
//! ```
//!
//! Long-form sections end with a CRC-32 (Annex A: polynomial 0x04C11DB7,
//! initial value 0xFFFFFFFF, no reflection, no final XOR), so the CRC of a
//! whole valid section, CRC included, is zero.

use thiserror::Error;

use super::packet::{PACKET_SIZE, PacketBuilder};
use super::types::{Cc, Pid};

/// Largest section: `section_length` is 12 bits, but must be ≤ 4093 (§2.4.4.3).
pub const MAX_SECTION: usize = 3 + 4093;

pub const TABLE_PAT: u8 = 0x00;
pub const TABLE_PMT: u8 = 0x02;
const TABLE_STUFFING: u8 = 0xFF;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PsiError {
    #[error("PID {pid}: section CRC-32 mismatch (table_id {table_id:#04x})")]
    Crc { pid: Pid, table_id: u8 },
    #[error("PID {pid}: section_length {len} exceeds the maximum of 4093")]
    TooLong { pid: Pid, len: usize },
    #[error("PID {pid}: pointer_field {pointer} points past the packet payload")]
    BadPointer { pid: Pid, pointer: u8 },
    #[error("PID {pid}: section continued without a start (missed payload_unit_start)")]
    Orphan { pid: Pid },
    #[error("{table}: {reason}")]
    Malformed { table: &'static str, reason: String },
}

/// Tables for slicing-by-8: `[0]` is the usual byte-at-a-time table (the
/// CRC register after shifting in one byte); `[k]` is the same byte followed
/// by `k` zero bytes, so eight table lookups, independent of each other,
/// advance the CRC by eight bytes instead of a chain of eight dependent ones.
#[allow(
    clippy::indexing_slicing,
    reason = "const fn over fixed 8 x 256-entry tables, t < 8, i < 256, a byte < 256"
)]
const fn crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut k = 0;
        while k < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev << 8) ^ tables[0][(prev >> 24) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
}

static CRC_TABLES: [[u32; 256]; 8] = crc_tables();

/// Looks up the low byte of `b` in `table`.
fn crc_lookup(table: &[u32; 256], b: u32) -> u32 {
    // Cannot fail: a byte indexes 256 entries.
    table.get(usize::from(b as u8)).copied().unwrap_or(0)
}

/// CRC-32/MPEG-2 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &CRC_TABLES;
    let mut crc: u32 = 0xFFFF_FFFF;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let Ok(&[a0, a1, a2, a3, b0, b1, b2, b3]) = <&[u8; 8]>::try_from(word) else {
            break;
        };
        let hi = crc ^ u32::from_be_bytes([a0, a1, a2, a3]);
        let lo = u32::from_be_bytes([b0, b1, b2, b3]);
        crc = crc_lookup(t7, hi >> 24)
            ^ crc_lookup(t6, hi >> 16)
            ^ crc_lookup(t5, hi >> 8)
            ^ crc_lookup(t4, hi)
            ^ crc_lookup(t3, lo >> 24)
            ^ crc_lookup(t2, lo >> 16)
            ^ crc_lookup(t1, lo >> 8)
            ^ crc_lookup(t0, lo);
    }
    words.remainder().iter().fold(crc, |crc, &b| {
        (crc << 8) ^ crc_lookup(t0, (crc >> 24) ^ u32::from(b))
    })
}

/// Reassembles sections of one PID from packet payloads.
#[derive(Debug, Default, Clone)]
pub struct SectionAssembler {
    pid: Pid,
    /// Bytes of a section in progress (header first).
    partial: Vec<u8>,
    in_progress: bool,
    /// The last long-form section that passed its CRC check. PSI repeats
    /// unchanged several times a second, and a byte-identical section needs
    /// no second CRC.
    verified: Vec<u8>,
}

impl SectionAssembler {
    pub fn new(pid: Pid) -> SectionAssembler {
        SectionAssembler {
            pid,
            partial: Vec::new(),
            in_progress: false,
            verified: Vec::new(),
        }
    }

    /// Drops a section in progress, e.g. after a continuity error.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.in_progress = false;
    }

    /// Feeds one packet's payload. Every complete section is passed to
    /// `emit` (CRC-checked when it has the long form); a section that fits in
    /// this packet is passed as a slice of `payload`, without copying.
    pub fn push(
        &mut self,
        pusi: bool,
        payload: &[u8],
        mut emit: impl FnMut(Result<&[u8], PsiError>),
    ) {
        let pid = self.pid;
        let mut rest = payload;
        if pusi {
            let Some((&pointer, after)) = payload.split_first() else {
                return;
            };
            let Some((tail, next)) = after.split_at_checked(usize::from(pointer)) else {
                self.reset();
                emit(Err(PsiError::BadPointer { pid, pointer }));
                return;
            };
            if self.in_progress {
                self.extend(tail, &mut emit);
            }
            // Whatever was not completed by the tail is lost.
            self.reset();
            rest = next;
            self.start_sections(rest, &mut emit);
        } else if self.in_progress {
            self.extend(rest, &mut emit);
        } else if rest.first().is_some_and(|&b| b != TABLE_STUFFING) && !rest.is_empty() {
            // A continuation with nothing to continue: count it once per
            // packet so that lost starts are visible.
            emit(Err(PsiError::Orphan { pid }));
        }
    }

    /// The section in `payload` when the packet only repeats the last
    /// section that passed its CRC check: `pusi`, nothing in progress,
    /// `pointer_field` 0, that section byte for byte, then stuffing or the
    /// end. For such a packet [`SectionAssembler::push`] would emit just
    /// that section, `Ok`, and leave the assembler as it is (even after a
    /// [`SectionAssembler::reset`]), so a caller that has nothing to do for
    /// an unchanged section may skip `push`. PSI repeats several times a
    /// second, so this is the common case.
    #[inline]
    pub fn repeated<'p>(&self, pusi: bool, payload: &'p [u8]) -> Option<&'p [u8]> {
        if !pusi || self.in_progress || self.verified.is_empty() {
            return None;
        }
        let (&0, rest) = payload.split_first()? else {
            return None;
        };
        let (section, after) = rest.split_at_checked(self.verified.len())?;
        let ends = after.first().is_none_or(|&b| b == TABLE_STUFFING);
        (ends && section == self.verified.as_slice()).then_some(section)
    }

    /// Appends continuation bytes; completes the section if it is all there.
    fn extend(&mut self, bytes: &[u8], emit: &mut impl FnMut(Result<&[u8], PsiError>)) {
        self.partial.extend_from_slice(bytes);
        let Some(total) = section_total(&self.partial) else {
            return;
        };
        if total > MAX_SECTION {
            emit(Err(PsiError::TooLong {
                pid: self.pid,
                len: total - 3,
            }));
            self.reset();
            return;
        }
        if self.partial.len() >= total {
            self.partial.truncate(total);
            emit(checked(self.pid, &mut self.verified, &self.partial));
            self.reset();
        }
    }

    /// Parses sections starting at the beginning of `bytes`, back to back,
    /// until stuffing or the end of the payload.
    fn start_sections(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(Result<&[u8], PsiError>)) {
        loop {
            match bytes.first() {
                None | Some(&TABLE_STUFFING) => return,
                Some(_) => {}
            }
            let Some(total) = section_total(bytes) else {
                // Header split across packets.
                self.partial.extend_from_slice(bytes);
                self.in_progress = true;
                return;
            };
            if total > MAX_SECTION {
                emit(Err(PsiError::TooLong {
                    pid: self.pid,
                    len: total - 3,
                }));
                return;
            }
            match bytes.split_at_checked(total) {
                Some((section, next)) => {
                    emit(checked(self.pid, &mut self.verified, section));
                    bytes = next;
                }
                None => {
                    self.partial.extend_from_slice(bytes);
                    self.in_progress = true;
                    return;
                }
            }
        }
    }
}

/// Total section size from its first 3 bytes, if present.
fn section_total(bytes: &[u8]) -> Option<usize> {
    let [_, hi, lo, ..] = bytes else { return None };
    Some(3 + (usize::from(hi & 0x0F) << 8 | usize::from(*lo)))
}

/// CRC-checks a long-form section, unless it is the same as `verified`,
/// which passed before; remembers the section when it passes.
fn checked<'s>(pid: Pid, verified: &mut Vec<u8>, section: &'s [u8]) -> Result<&'s [u8], PsiError> {
    let long_form = section.get(1).is_some_and(|b| b & 0x80 != 0);
    if long_form && section != verified.as_slice() {
        if crc32(section) != 0 {
            let table_id = section.first().copied().unwrap_or(0);
            return Err(PsiError::Crc { pid, table_id });
        }
        verified.clear();
        verified.extend_from_slice(section);
    }
    Ok(section)
}

/// The long-form header fields of a CRC-checked section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionHeader {
    pub table_id: u8,
    pub table_id_extension: u16,
    pub version: u8,
    pub current_next: bool,
    pub section_number: u8,
    pub last_section_number: u8,
}

impl SectionHeader {
    /// Splits a long-form section into its header and body (between the
    /// header and the CRC).
    pub fn parse(section: &[u8]) -> Result<(SectionHeader, &[u8]), PsiError> {
        let malformed = |reason: &str| PsiError::Malformed {
            table: "section",
            reason: reason.to_owned(),
        };
        let [
            table_id,
            b1,
            _,
            ext_hi,
            ext_lo,
            b5,
            section_number,
            last_section_number,
            ..,
        ] = *section
        else {
            return Err(malformed("shorter than the 8-byte long-form header"));
        };
        if b1 & 0x80 == 0 {
            return Err(malformed("section_syntax_indicator is 0"));
        }
        let body = section
            .get(8..section.len().saturating_sub(4))
            .ok_or_else(|| malformed("too short for its CRC"))?;
        Ok((
            SectionHeader {
                table_id,
                table_id_extension: u16::from_be_bytes([ext_hi, ext_lo]),
                version: (b5 >> 1) & 0x1F,
                current_next: b5 & 1 != 0,
                section_number,
                last_section_number,
            },
            body,
        ))
    }
}

/// One PAT entry (§2.4.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatEntry {
    pub program_number: u16,
    /// The PMT PID (or the network PID when `program_number` is 0).
    pub pid: Pid,
}

/// A Program Association Table section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pat {
    pub transport_stream_id: u16,
    pub version: u8,
    pub entries: Vec<PatEntry>,
}

impl Pat {
    pub fn parse(section: &[u8]) -> Result<Pat, PsiError> {
        let (header, body) = SectionHeader::parse(section)?;
        if header.table_id != TABLE_PAT {
            return Err(PsiError::Malformed {
                table: "PAT",
                reason: format!("table_id {:#04x}, expected 0x00", header.table_id),
            });
        }
        let entries = body
            .chunks_exact(4)
            .map(|e| {
                let (program, pid) = e.split_at(2);
                PatEntry {
                    program_number: u16::from_be_bytes([
                        program.first().copied().unwrap_or(0),
                        program.get(1).copied().unwrap_or(0),
                    ]),
                    pid: Pid::new(u16::from_be_bytes([
                        pid.first().copied().unwrap_or(0),
                        pid.get(1).copied().unwrap_or(0),
                    ])),
                }
            })
            .collect();
        Ok(Pat {
            transport_stream_id: header.table_id_extension,
            version: header.version,
            entries,
        })
    }

    /// Programs (entries other than the network PID).
    pub fn programs(&self) -> impl Iterator<Item = &PatEntry> {
        self.entries.iter().filter(|e| e.program_number != 0)
    }

    /// Encodes the PAT as one long-form section with CRC.
    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.entries.len() * 4);
        for e in &self.entries {
            body.extend_from_slice(&e.program_number.to_be_bytes());
            body.extend_from_slice(&(0xE000 | e.pid.value()).to_be_bytes());
        }
        long_section(TABLE_PAT, self.transport_stream_id, self.version, &body)
    }
}

/// One elementary stream of a PMT (§2.4.4.9, Table 2-33).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: Pid,
    /// The ES_info descriptor loop, raw.
    pub descriptors: Vec<u8>,
}

impl PmtStream {
    pub fn codec(&self) -> Codec {
        Codec::identify(self.stream_type, &self.descriptors)
    }
}

/// A Program Map Table section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub version: u8,
    pub pcr_pid: Pid,
    /// The program_info descriptor loop, raw.
    pub descriptors: Vec<u8>,
    pub streams: Vec<PmtStream>,
}

impl Pmt {
    pub fn parse(section: &[u8]) -> Result<Pmt, PsiError> {
        let malformed = |reason: String| PsiError::Malformed {
            table: "PMT",
            reason,
        };
        let (header, body) = SectionHeader::parse(section)?;
        if header.table_id != TABLE_PMT {
            return Err(malformed(format!(
                "table_id {:#04x}, expected 0x02",
                header.table_id
            )));
        }
        let [pcr_hi, pcr_lo, info_hi, info_lo, rest @ ..] = body else {
            return Err(malformed("body shorter than 4 bytes".into()));
        };
        let info_len = usize::from(info_hi & 0x0F) << 8 | usize::from(*info_lo);
        let (descriptors, mut es) = rest.split_at_checked(info_len).ok_or_else(|| {
            malformed(format!(
                "program_info_length {info_len} exceeds the {} bytes left",
                rest.len()
            ))
        })?;
        let mut streams = Vec::new();
        while !es.is_empty() {
            let [stream_type, pid_hi, pid_lo, len_hi, len_lo, tail @ ..] = es else {
                return Err(malformed(format!(
                    "{} trailing bytes are not a stream entry",
                    es.len()
                )));
            };
            let len = usize::from(len_hi & 0x0F) << 8 | usize::from(*len_lo);
            let (desc, next) = tail.split_at_checked(len).ok_or_else(|| {
                malformed(format!(
                    "ES_info_length {len} exceeds the {} bytes left",
                    tail.len()
                ))
            })?;
            streams.push(PmtStream {
                stream_type: *stream_type,
                pid: Pid::new(u16::from_be_bytes([*pid_hi, *pid_lo])),
                descriptors: desc.to_vec(),
            });
            es = next;
        }
        Ok(Pmt {
            program_number: header.table_id_extension,
            version: header.version,
            pcr_pid: Pid::new(u16::from_be_bytes([*pcr_hi, *pcr_lo])),
            descriptors: descriptors.to_vec(),
            streams,
        })
    }

    /// Encodes the PMT as one long-form section with CRC.
    pub fn to_section(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(0xE000 | self.pcr_pid.value()).to_be_bytes());
        body.extend_from_slice(&(0xF000 | self.descriptors.len() as u16 & 0x0FFF).to_be_bytes());
        body.extend_from_slice(&self.descriptors);
        for s in &self.streams {
            body.push(s.stream_type);
            body.extend_from_slice(&(0xE000 | s.pid.value()).to_be_bytes());
            body.extend_from_slice(&(0xF000 | s.descriptors.len() as u16 & 0x0FFF).to_be_bytes());
            body.extend_from_slice(&s.descriptors);
        }
        long_section(TABLE_PMT, self.program_number, self.version, &body)
    }

    /// The first video stream of the program, if any.
    pub fn video(&self) -> Option<&PmtStream> {
        self.streams.iter().find(|s| s.codec().is_video())
    }
}

fn long_section(table_id: u8, extension: u16, version: u8, body: &[u8]) -> Vec<u8> {
    let section_length = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + section_length);
    s.push(table_id);
    s.extend_from_slice(&(0xB000 | (section_length as u16 & 0x0FFF)).to_be_bytes());
    s.extend_from_slice(&extension.to_be_bytes());
    s.push(0xC0 | (version & 0x1F) << 1 | 1);
    s.push(0);
    s.push(0);
    s.extend_from_slice(body);
    let crc = crc32(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// Splits a section into transport packets (pointer_field 0, stuffed with
/// 0xFF), advancing `cc` for each packet.
pub fn packetize_section(pid: Pid, section: &[u8], cc: &mut Cc) -> Vec<[u8; PACKET_SIZE]> {
    let mut packets = Vec::new();
    let mut first = Vec::with_capacity(section.len() + 1);
    first.push(0);
    first.extend_from_slice(section);
    let mut rest: &[u8] = &first;
    let mut builder = PacketBuilder::new(pid);
    builder.pusi = true;
    while !rest.is_empty() || packets.is_empty() {
        let mut out = [0xFFu8; PACKET_SIZE];
        builder.cc = *cc;
        // PSI packets are stuffed after the section, not in an adaptation
        // field (§2.4.4.1): build a full payload.
        let mut payload = [0xFFu8; PACKET_SIZE - 4];
        let take = rest.len().min(payload.len());
        let (head, tail) = rest.split_at(take);
        if let Some(dst) = payload.get_mut(..take) {
            dst.copy_from_slice(head);
        }
        builder.build(&payload, &mut out);
        packets.push(out);
        rest = tail;
        builder.pusi = false;
        *cc = cc.next();
    }
    packets
}

/// What a stream carries, from its `stream_type` and descriptors (Table 2-34
/// and the registration/DVB descriptors commonly used with type 0x06).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Mpeg1Video,
    Mpeg2Video,
    H264,
    Hevc,
    Mpeg1Audio,
    Mpeg2Audio,
    Aac,
    AacLatm,
    Ac3,
    Eac3,
    Opus,
    DvbSubtitle,
    Teletext,
    Scte35,
    Metadata,
    Other(u8),
}

impl Codec {
    pub fn identify(stream_type: u8, descriptors: &[u8]) -> Codec {
        match stream_type {
            0x01 => Codec::Mpeg1Video,
            0x02 => Codec::Mpeg2Video,
            0x03 => Codec::Mpeg1Audio,
            0x04 => Codec::Mpeg2Audio,
            0x0F => Codec::Aac,
            0x11 => Codec::AacLatm,
            0x15 => Codec::Metadata,
            0x1B => Codec::H264,
            0x24 => Codec::Hevc,
            0x81 => Codec::Ac3,
            0x86 => Codec::Scte35,
            0x87 => Codec::Eac3,
            0x06 => Self::from_descriptors(descriptors).unwrap_or(Codec::Other(0x06)),
            other => Codec::Other(other),
        }
    }

    fn from_descriptors(mut d: &[u8]) -> Option<Codec> {
        while let [tag, len, rest @ ..] = d {
            let (body, next) = rest.split_at_checked(usize::from(*len))?;
            let found = match (tag, body) {
                (0x6A, _) => Some(Codec::Ac3),
                (0x7A, _) => Some(Codec::Eac3),
                (0x59, _) => Some(Codec::DvbSubtitle),
                (0x56, _) => Some(Codec::Teletext),
                (0x05, [b'O', b'p', b'u', b's', ..]) => Some(Codec::Opus),
                (0x05, [b'A', b'C', b'-', b'3', ..]) => Some(Codec::Ac3),
                (0x05, [b'E', b'A', b'C', b'3', ..]) => Some(Codec::Eac3),
                (0x05, [b'H', b'E', b'V', b'C', ..]) => Some(Codec::Hevc),
                _ => None,
            };
            if found.is_some() {
                return found;
            }
            d = next;
        }
        None
    }

    pub fn is_video(self) -> bool {
        matches!(
            self,
            Codec::Mpeg1Video | Codec::Mpeg2Video | Codec::H264 | Codec::Hevc
        )
    }

    pub fn is_audio(self) -> bool {
        matches!(
            self,
            Codec::Mpeg1Audio
                | Codec::Mpeg2Audio
                | Codec::Aac
                | Codec::AacLatm
                | Codec::Ac3
                | Codec::Eac3
                | Codec::Opus
        )
    }

    /// Short lowercase name, as ffprobe spells it where it has one.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Mpeg1Video => "mpeg1video",
            Codec::Mpeg2Video => "mpeg2video",
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Mpeg1Audio => "mp1",
            Codec::Mpeg2Audio => "mp2",
            Codec::Aac => "aac",
            Codec::AacLatm => "aac_latm",
            Codec::Ac3 => "ac3",
            Codec::Eac3 => "eac3",
            Codec::Opus => "opus",
            Codec::DvbSubtitle => "dvb_subtitle",
            Codec::Teletext => "dvb_teletext",
            Codec::Scte35 => "scte_35",
            Codec::Metadata => "timed_id3",
            Codec::Other(_) => "unknown",
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::packet::TsPacket;
    use proptest::prelude::*;

    fn sample_pmt() -> Pmt {
        Pmt {
            program_number: 1,
            version: 3,
            pcr_pid: Pid::new(0x100),
            descriptors: vec![0x0E, 3, 0xC0, 0x12, 0x34],
            streams: vec![
                PmtStream {
                    stream_type: 0x1B,
                    pid: Pid::new(0x100),
                    descriptors: vec![],
                },
                PmtStream {
                    stream_type: 0x0F,
                    pid: Pid::new(0x101),
                    descriptors: vec![0x0A, 4, b'e', b'n', b'g', 0],
                },
                PmtStream {
                    stream_type: 0x06,
                    pid: Pid::new(0x102),
                    descriptors: vec![0x6A, 1, 0],
                },
            ],
        }
    }

    fn collect(
        asm: &mut SectionAssembler,
        packets: &[[u8; PACKET_SIZE]],
    ) -> Vec<Result<Vec<u8>, PsiError>> {
        let mut out = Vec::new();
        for p in packets {
            let p = TsPacket::new(p).unwrap();
            asm.push(p.payload_unit_start(), p.payload(), |r| {
                out.push(r.map(<[u8]>::to_vec))
            });
        }
        out
    }

    /// The byte-at-a-time definition (Annex A), bit by bit.
    fn crc32_bitwise(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04C1_1DB7
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    proptest! {
        /// Whenever `repeated` says a packet is a repeat, `push` emits just
        /// that section and leaves the assembler unchanged.
        #[test]
        fn repeated_agrees_with_push(
            pusi: bool,
            in_progress: bool,
            edits in proptest::collection::vec((0usize..184, any::<u8>()), 0..3),
        ) {
            let section = sample_pmt().to_section();
            let mut cc = Cc::new(0);
            let packets = packetize_section(Pid::new(0x1000), &section, &mut cc);
            let mut asm = SectionAssembler::new(Pid::new(0x1000));
            collect(&mut asm, &packets);
            if in_progress {
                asm.push(true, &[0, TABLE_PMT, 0xB0], |_| {});
            }
            let mut payload = TsPacket::new(&packets[0]).unwrap().payload().to_vec();
            let len = payload.len();
            for (at, b) in edits {
                payload[at % len] = b;
            }
            if let Some(found) = asm.repeated(pusi, &payload) {
                let found = found.to_vec();
                let before = format!("{asm:?}");
                let mut emitted = Vec::new();
                asm.push(pusi, &payload, |r| emitted.push(r.map(<[u8]>::to_vec)));
                prop_assert_eq!(emitted, vec![Ok(found)]);
                prop_assert_eq!(format!("{asm:?}"), before);
            }
        }

        #[test]
        fn crc32_matches_the_bitwise_definition(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(crc32(&data), crc32_bitwise(&data));
        }
    }

    #[test]
    fn a_repeated_section_is_recognised_and_push_agrees() {
        let section = sample_pmt().to_section();
        let mut cc = Cc::new(0);
        let packets = packetize_section(Pid::new(0x1000), &section, &mut cc);
        let payload = |p: &[u8; PACKET_SIZE]| TsPacket::new(p).unwrap().payload().to_vec();
        let mut asm = SectionAssembler::new(Pid::new(0x1000));
        // Nothing verified yet.
        assert_eq!(asm.repeated(true, &payload(&packets[0])), None);
        assert_eq!(collect(&mut asm, &packets), vec![Ok(section.clone())]);
        assert_eq!(
            asm.repeated(true, &payload(&packets[0])),
            Some(&section[..])
        );
        assert_eq!(asm.repeated(false, &payload(&packets[0])), None);
        assert_eq!(collect(&mut asm, &packets), vec![Ok(section.clone())]);
        // Another section after it, a pointer_field, or a change: not a repeat.
        let mut two = payload(&packets[0]);
        two[1 + section.len()] = TABLE_PMT;
        assert_eq!(asm.repeated(true, &two), None);
        let mut pointed = payload(&packets[0]);
        pointed.insert(0, 1);
        assert_eq!(asm.repeated(true, &pointed), None);
        let mut changed = payload(&packets[0]);
        changed[5] ^= 0x02;
        assert_eq!(asm.repeated(true, &changed), None);
        // A section in progress.
        let mut long = sample_pmt();
        long.descriptors = vec![0x80; 400];
        let spanning = packetize_section(Pid::new(0x1000), &long.to_section(), &mut cc);
        collect(&mut asm, &spanning[..1]);
        assert_eq!(asm.repeated(true, &payload(&packets[0])), None);
    }

    #[test]
    fn crc_of_known_pat() {
        // PAT from an ffmpeg mux: program 1 → PMT PID 0x1000.
        let pat = [
            0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1,
            0x04, 0xB2,
        ];
        assert_eq!(crc32(&pat), 0);
        let parsed = Pat::parse(&pat).unwrap();
        assert_eq!(parsed.transport_stream_id, 1);
        assert_eq!(
            parsed.entries,
            vec![PatEntry {
                program_number: 1,
                pid: Pid::new(0x1000)
            }]
        );
        assert_eq!(parsed.to_section(), pat);
    }

    #[test]
    fn pmt_round_trips_and_identifies_codecs() {
        let pmt = sample_pmt();
        let parsed = Pmt::parse(&pmt.to_section()).unwrap();
        assert_eq!(parsed, pmt);
        let codecs: Vec<_> = parsed.streams.iter().map(PmtStream::codec).collect();
        assert_eq!(codecs, vec![Codec::H264, Codec::Aac, Codec::Ac3]);
        assert_eq!(parsed.video().unwrap().pid, Pid::new(0x100));
    }

    #[test]
    fn section_spanning_packets() {
        let mut pmt = sample_pmt();
        pmt.descriptors = vec![0x80; 400];
        let section = pmt.to_section();
        let mut cc = Cc::new(0);
        let packets = packetize_section(Pid::new(0x1000), &section, &mut cc);
        assert_eq!(packets.len(), 3);
        let mut asm = SectionAssembler::new(Pid::new(0x1000));
        let got = collect(&mut asm, &packets);
        assert_eq!(got, vec![Ok(section)]);
    }

    #[test]
    fn several_sections_in_one_packet_and_pointer_field() {
        let a = Pat {
            transport_stream_id: 1,
            version: 0,
            entries: vec![PatEntry {
                program_number: 1,
                pid: Pid::new(0x100),
            }],
        }
        .to_section();
        let b = Pat {
            transport_stream_id: 1,
            version: 1,
            entries: vec![PatEntry {
                program_number: 2,
                pid: Pid::new(0x200),
            }],
        }
        .to_section();
        // Packet 1: start of a long section X that ends in packet 2; packet 2:
        // pointer_field covers the tail of X, then sections a and b follow.
        let mut pmt = sample_pmt();
        pmt.descriptors = vec![0x80; 290];
        let x = pmt.to_section();
        let (x1, x2) = x.split_at(183);
        let mut p1 = vec![0u8];
        p1.extend_from_slice(x1);
        let mut p2 = vec![x2.len() as u8];
        p2.extend_from_slice(x2);
        p2.extend_from_slice(&a);
        p2.extend_from_slice(&b);
        let mut packets = Vec::new();
        for payload in [&p1, &p2] {
            let mut padded = [0xFFu8; 184];
            padded[..payload.len()].copy_from_slice(payload);
            let mut out = [0u8; PACKET_SIZE];
            let mut builder = PacketBuilder::new(Pid::PAT);
            builder.pusi = true;
            builder.build(&padded, &mut out);
            packets.push(out);
        }
        let mut asm = SectionAssembler::new(Pid::PAT);
        let got = collect(&mut asm, &packets);
        // x1 started with a PUSI too; x is completed by the pointer bytes.
        assert_eq!(got, vec![Ok(x.clone()), Ok(a), Ok(b)]);
    }

    #[test]
    fn corrupted_section_fails_crc() {
        let mut section = sample_pmt().to_section();
        section[10] ^= 0x01;
        let mut cc = Cc::new(0);
        let packets = packetize_section(Pid::new(0x1000), &section, &mut cc);
        let mut asm = SectionAssembler::new(Pid::new(0x1000));
        let got = collect(&mut asm, &packets);
        assert_eq!(
            got,
            vec![Err(PsiError::Crc {
                pid: Pid::new(0x1000),
                table_id: 2
            })]
        );
    }

    #[test]
    fn malformed_pmt_lengths_are_errors() {
        let mut pmt = sample_pmt().to_section();
        // program_info_length = 0xFFF.
        pmt[10] = 0xFF;
        pmt[11] = 0xFF;
        let len = pmt.len();
        let crc = crc32(&pmt[..len - 4]);
        pmt[len - 4..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            Pmt::parse(&pmt),
            Err(PsiError::Malformed { table: "PMT", .. })
        ));
    }

    proptest! {
        #[test]
        fn any_payloads_never_panic(payloads in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..184)), 0..20)) {
            let mut asm = SectionAssembler::new(Pid::new(0x100));
            for (pusi, payload) in &payloads {
                asm.push(*pusi, payload, |r| {
                    if let Ok(s) = r {
                        assert!(s.len() <= MAX_SECTION);
                        let _ = Pmt::parse(s);
                        let _ = Pat::parse(s);
                    }
                });
            }
        }

        #[test]
        fn pat_round_trips(ts_id: u16, version in 0u8..32, entries in proptest::collection::vec((any::<u16>(), 0u16..0x2000), 0..50)) {
            let pat = Pat { transport_stream_id: ts_id, version, entries: entries.iter().map(|&(p, pid)| PatEntry { program_number: p, pid: Pid::new(pid) }).collect() };
            prop_assert_eq!(Pat::parse(&pat.to_section()).unwrap(), pat);
        }
    }
}
