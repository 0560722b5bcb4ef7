//! Demultiplexer for a whole transport stream: PSI tracking, PES framing,
//! continuity checking and splice-point (NAL) scanning.
//!
//! [`Demux`] is sans-IO: feed it packets with [`Demux::push_packet`] (or a
//! raw byte stream through [`StreamDemux`]) and it calls back a
//! [`DemuxHandler`] for everything it finds. Every packet handed in gets a
//! sequence number, its *index*, so that a consumer that stores packets (the
//! ring buffer, the probe) can refer to them.
//!
//! Access units are reported when their kind is known: for H.264/HEVC that
//! is at the first VCL NAL unit, which may be a few packets after the PES
//! start; the report carries the index of the packet where the PES started,
//! which is where a decoder must begin.

use std::ops::Range;

use bytes::Bytes;

use super::continuity::{CcTracker, Continuity};
use super::nal::{AccessUnitInfo, NalScanner, PictureKind, VideoCodec};
use super::packet::{PACKET_SIZE, PacketError, TsPacket};
use super::pes::{MAX_HEADER, PesError, PesHeader};
use super::psi::{Codec, Pat, Pmt, PsiError, SectionAssembler, TABLE_PAT, TABLE_PMT, crc32};
use super::resync::{Origin, Resync, ResyncStats};
use super::types::{Cc, Pcr, Pid, Timestamp};

/// Something wrong in the stream; the demux counts it and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error("PID {pid}: continuity counter {got} where {expected} was expected")]
    Continuity { pid: Pid, expected: u8, got: u8 },
    #[error(transparent)]
    Psi(#[from] PsiError),
    #[error(transparent)]
    Pes(#[from] PesError),
}

/// A PES packet start on an elementary stream PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PesStart {
    pub pid: Pid,
    pub codec: Codec,
    /// Index of the packet with `payload_unit_start_indicator`.
    pub index: u64,
    pub header: PesHeader,
}

/// One video access unit, reported once its picture kind is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessUnit {
    pub pid: Pid,
    pub codec: Codec,
    /// Index of the packet where the access unit's PES packet starts.
    pub index: u64,
    pub pts: Option<Timestamp>,
    pub dts: Option<Timestamp>,
    pub info: AccessUnitInfo,
    /// The `random_access_indicator` of the starting packet.
    pub random_access_indicator: bool,
    /// A continuity error hit the PES packet before its kind was known.
    pub damaged: bool,
}

impl AccessUnit {
    pub fn is_idr(&self) -> bool {
        self.info.picture == PictureKind::Idr
    }
}

/// Receives what the demux finds. Every method has an empty default, so a
/// handler implements only what it needs; calls are static, so unused ones
/// cost nothing.
pub trait DemuxHandler {
    /// Every well-formed packet, before any other callback for it.
    fn on_packet(&mut self, _index: u64, _packet: &TsPacket<'_>) {}
    /// A new or changed PAT (with its raw section).
    fn on_pat(&mut self, _index: u64, _pat: &Pat, _section: &[u8]) {}
    /// A new or changed PMT (with its PID and raw section).
    fn on_pmt(&mut self, _index: u64, _pid: Pid, _pmt: &Pmt, _section: &[u8]) {}
    /// A PES packet start on an elementary stream.
    fn on_pes(&mut self, _pes: &PesStart) {}
    /// A video access unit whose picture kind is now known.
    fn on_access_unit(&mut self, _au: &AccessUnit) {}
    fn on_pcr(&mut self, _index: u64, _pid: Pid, _pcr: Pcr) {}
    fn on_error(&mut self, _index: u64, _error: &DemuxError) {}
}

/// A handler that ignores everything.
impl DemuxHandler for () {}

/// Counters kept by the demux.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub packets: u64,
    pub malformed_packets: u64,
    pub transport_errors: u64,
    pub scrambled_packets: u64,
    pub cc_errors: u64,
    pub psi_errors: u64,
    pub pes_errors: u64,
    /// PAT/PMT version (or content) changes after the first.
    pub psi_changes: u64,
}

/// What the demux knows about one PID.
///
/// `repr(u8)` gives the enum a tag byte of its own, written only when a
/// PID's role changes. Without it the tag is a niche in `EsState`'s fields,
/// which the previous packet of the PID has usually just written with a
/// narrower store, and reading it back stalls on store forwarding.
#[derive(Debug)]
#[repr(u8)]
enum PidRole {
    Pat(SectionAssembler),
    Pmt(SectionAssembler),
    Es(EsState),
}

#[derive(Debug)]
struct EsState {
    codec: Codec,
    /// PES header bytes collected when the header spans packets.
    header: Vec<u8>,
    collecting_header: bool,
    current: Option<PendingAu>,
    scanner: Option<NalScanner>,
}

#[derive(Debug, Clone, Copy)]
struct PendingAu {
    index: u64,
    pts: Option<Timestamp>,
    dts: Option<Timestamp>,
    random_access_indicator: bool,
    damaged: bool,
}

/// Per-PID counters, kept for every PID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidCounters {
    pub packets: u64,
    pub cc_errors: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Demux {
    next_index: u64,
    /// Index into `roles` + 1 per PID; 0 = not tracked.
    slots: Box<[u16; Pid::COUNT]>,
    roles: Vec<(Pid, PidRole)>,
    counters: Box<[PidCounters; Pid::COUNT]>,
    cc: CcTracker,
    stats: DemuxStats,
    /// CRC of the last PAT, and of the last PMT per PMT PID, to notice changes.
    pat_crc: Option<u32>,
    pmt_crcs: Vec<(Pid, u32)>,
    pat: Option<Pat>,
    pmts: Vec<(Pid, Pmt)>,
    /// Reused for the sections of each PSI packet.
    sections: SectionBuffer,
}

impl Default for Demux {
    fn default() -> Demux {
        let mut demux = Demux {
            next_index: 0,
            slots: Box::new([0; Pid::COUNT]),
            roles: Vec::new(),
            counters: Box::new([PidCounters::default(); Pid::COUNT]),
            cc: CcTracker::new(),
            stats: DemuxStats::default(),
            pat_crc: None,
            pmt_crcs: Vec::new(),
            pat: None,
            pmts: Vec::new(),
            sections: SectionBuffer::default(),
        };
        demux.track(Pid::PAT, PidRole::Pat(SectionAssembler::new(Pid::PAT)));
        demux
    }
}

impl Demux {
    pub fn new() -> Demux {
        Demux::default()
    }

    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// Index the next pushed packet will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Counters for one PID.
    pub fn pid_counters(&self, pid: Pid) -> PidCounters {
        self.counters.get(pid.index()).copied().unwrap_or_default()
    }

    /// PIDs that carried at least one packet, with their counters.
    pub fn pids(&self) -> impl Iterator<Item = (Pid, PidCounters)> + '_ {
        self.counters
            .iter()
            .enumerate()
            .filter(|(_, c)| c.packets > 0)
            .map(|(pid, c)| (Pid::new(pid as u16), *c))
    }

    /// The current PAT, once one has been received.
    pub fn pat(&self) -> Option<&Pat> {
        self.pat.as_ref()
    }

    /// The current PMTs, by PMT PID, in the order they were first seen.
    pub fn pmts(&self) -> impl Iterator<Item = (Pid, &Pmt)> {
        self.pmts.iter().map(|(pid, pmt)| (*pid, pmt))
    }

    fn track(&mut self, pid: Pid, role: PidRole) {
        match self.slots.get(pid.index()).copied() {
            Some(slot) if slot > 0 => {
                if let Some(entry) = self.roles.get_mut(usize::from(slot) - 1) {
                    entry.1 = role;
                }
            }
            _ => {
                self.roles.push((pid, role));
                let slot = u16::try_from(self.roles.len()).unwrap_or(0);
                if let Some(s) = self.slots.get_mut(pid.index()) {
                    *s = slot;
                }
            }
        }
    }

    #[inline]
    fn role_mut(&mut self, pid: Pid) -> Option<&mut PidRole> {
        role_in(&self.slots, &mut self.roles, pid)
    }

    /// Feeds one 188-byte packet.
    ///
    /// This is the per-packet hot path: the common case (an elementary
    /// stream packet in order) stays here, and everything rarer — errors,
    /// PSI, PES starts — is out of line, which keeps this function's frame
    /// and register use small.
    pub fn push_packet<H: DemuxHandler>(&mut self, bytes: &[u8; PACKET_SIZE], handler: &mut H) {
        let index = self.next_index;
        self.next_index += 1;
        self.stats.packets += 1;
        let packet = match TsPacket::from_array(bytes) {
            Ok(p) => p,
            Err(e) => return self.malformed(index, e, handler),
        };
        let pid = packet.pid();
        if let Some(c) = self.counters.get_mut(pid.index()) {
            c.packets += 1;
        }
        if packet.transport_error() {
            // §2.4.3.2: at least one uncorrectable bit error; nothing in
            // the packet, not even its PID, can be trusted.
            self.stats.transport_errors += 1;
            return;
        }
        handler.on_packet(index, &packet);
        if pid == Pid::NULL {
            return;
        }
        let continuity = self.cc.check(&packet);
        if let Continuity::Error { expected, got } = continuity {
            self.cc_error(index, pid, expected, got, handler);
        }
        if let Some(pcr) = packet.pcr() {
            handler.on_pcr(index, pid, pcr);
        }
        if continuity == Continuity::Duplicate {
            return;
        }
        if packet.scrambling() != 0 {
            self.stats.scrambled_packets += 1;
            return;
        }
        if !packet.has_payload() {
            return;
        }
        let lost = continuity.is_error();
        match self.role_mut(pid) {
            Some(PidRole::Es(es)) => {
                if let Err(e) = es.push(pid, index, &packet, lost, handler) {
                    self.pes_error(index, e, handler);
                }
            }
            Some(PidRole::Pat(_) | PidRole::Pmt(_)) => {
                self.push_psi(index, pid, &packet, lost, handler);
            }
            None => {}
        }
    }

    #[cold]
    #[inline(never)]
    fn malformed<H: DemuxHandler>(&mut self, index: u64, e: PacketError, handler: &mut H) {
        self.stats.malformed_packets += 1;
        handler.on_error(index, &DemuxError::Packet(e));
    }

    #[cold]
    #[inline(never)]
    fn cc_error<H: DemuxHandler>(
        &mut self,
        index: u64,
        pid: Pid,
        expected: Cc,
        got: Cc,
        handler: &mut H,
    ) {
        self.stats.cc_errors += 1;
        if let Some(c) = self.counters.get_mut(pid.index()) {
            c.cc_errors += 1;
        }
        handler.on_error(
            index,
            &DemuxError::Continuity {
                pid,
                expected: expected.value(),
                got: got.value(),
            },
        );
    }

    #[cold]
    #[inline(never)]
    fn pes_error<H: DemuxHandler>(&mut self, index: u64, e: PesError, handler: &mut H) {
        self.stats.pes_errors += 1;
        handler.on_error(index, &DemuxError::Pes(e));
    }

    /// A packet on a PAT or PMT PID.
    #[inline(never)]
    fn push_psi<H: DemuxHandler>(
        &mut self,
        index: u64,
        pid: Pid,
        packet: &TsPacket<'_>,
        lost: bool,
        handler: &mut H,
    ) {
        // Borrows only `roles`, so `sections` and the CRCs stay usable.
        let (asm, table, known) = match role_in(&self.slots, &mut self.roles, pid) {
            Some(PidRole::Pat(asm)) => (asm, TABLE_PAT, self.pat_crc),
            Some(PidRole::Pmt(asm)) => {
                let known = self.pmt_crcs.iter().find(|(p, _)| *p == pid);
                (asm, TABLE_PMT, known.map(|(_, crc)| *crc))
            }
            Some(PidRole::Es(_)) | None => return,
        };
        // The usual PSI packet repeats the current table: nothing to do
        // (see `SectionBuffer::collect` for when a section is ignored).
        if let Some(section) = asm.repeated(packet.payload_unit_start(), packet.payload())
            && (section.first() != Some(&table) || known == Some(section_crc(section)))
        {
            return;
        }
        self.sections.collect(asm, packet, lost, table, known);
        if self.sections.ranges.is_empty() {
            return;
        }
        let mut found = std::mem::take(&mut self.sections);
        for s in found.ranges.drain(..) {
            match s {
                Ok(r) => {
                    let section = found.bytes.get(r).unwrap_or_default();
                    if table == TABLE_PAT {
                        self.handle_pat(index, section, handler);
                    } else {
                        self.handle_pmt(index, pid, section, handler);
                    }
                }
                Err(e) => self.psi_error(index, e, handler),
            }
        }
        self.sections = found;
    }

    /// Ends the stream: reports access units still waiting for their end.
    pub fn finish<H: DemuxHandler>(&mut self, handler: &mut H) {
        for (pid, role) in &mut self.roles {
            if let PidRole::Es(es) = role {
                es.end_pes(*pid, handler);
            }
        }
    }

    fn psi_error<H: DemuxHandler>(&mut self, index: u64, e: PsiError, handler: &mut H) {
        // A section continued without its start is normal when joining a
        // stream mid-section; don't count it as an error.
        if !matches!(e, PsiError::Orphan { .. }) {
            self.stats.psi_errors += 1;
            handler.on_error(index, &DemuxError::Psi(e));
        }
    }

    fn handle_pat<H: DemuxHandler>(&mut self, index: u64, section: &[u8], handler: &mut H) {
        if section.first() != Some(&TABLE_PAT) {
            return;
        }
        let crc = section_crc(section);
        if self.pat_crc == Some(crc) {
            return;
        }
        let pat = match Pat::parse(section) {
            Ok(p) => p,
            Err(e) => return self.psi_error(index, e, handler),
        };
        if self.pat_crc.is_some() {
            self.stats.psi_changes += 1;
        }
        self.pat_crc = Some(crc);
        // Forget PMT PIDs that left the PAT.
        let keep: Vec<Pid> = pat.programs().map(|e| e.pid).collect();
        let gone: Vec<Pid> = self
            .pmts
            .iter()
            .map(|(pid, _)| *pid)
            .filter(|pid| !keep.contains(pid))
            .collect();
        for pid in gone {
            self.untrack(pid);
            self.pmts.retain(|(p, _)| *p != pid);
            self.pmt_crcs.retain(|(p, _)| *p != pid);
        }
        for pid in keep {
            let already = matches!(self.role_mut(pid), Some(PidRole::Pmt(_)));
            if !already && pid != Pid::PAT && pid != Pid::NULL {
                self.track(pid, PidRole::Pmt(SectionAssembler::new(pid)));
            }
        }
        handler.on_pat(index, &pat, section);
        self.pat = Some(pat);
    }

    fn handle_pmt<H: DemuxHandler>(
        &mut self,
        index: u64,
        pid: Pid,
        section: &[u8],
        handler: &mut H,
    ) {
        if section.first() != Some(&TABLE_PMT) {
            return;
        }
        let crc = section_crc(section);
        let previous = self.pmt_crcs.iter().position(|(p, _)| *p == pid);
        if let Some(i) = previous
            && self.pmt_crcs.get(i).map(|(_, c)| *c) == Some(crc)
        {
            return;
        }
        let pmt = match Pmt::parse(section) {
            Ok(p) => p,
            Err(e) => return self.psi_error(index, e, handler),
        };
        match previous.and_then(|i| self.pmt_crcs.get_mut(i)) {
            Some(entry) => {
                entry.1 = crc;
                self.stats.psi_changes += 1;
            }
            None => self.pmt_crcs.push((pid, crc)),
        }
        // Streams that left this program stop being tracked; new or
        // changed ones start fresh.
        if let Some((_, old)) = self.pmts.iter().find(|(p, _)| *p == pid) {
            let gone: Vec<Pid> = old
                .streams
                .iter()
                .filter(|o| !pmt.streams.iter().any(|s| s.pid == o.pid))
                .map(|o| o.pid)
                .collect();
            for g in gone {
                self.untrack(g);
            }
        }
        for s in &pmt.streams {
            let codec = s.codec();
            let same = matches!(self.role_mut(s.pid), Some(PidRole::Es(es)) if es.codec == codec);
            let reserved = s.pid == Pid::PAT || s.pid == Pid::NULL || s.pid == pid;
            if !same && !reserved {
                self.track(s.pid, PidRole::Es(EsState::new(codec)));
            }
        }
        handler.on_pmt(index, pid, &pmt, section);
        match self.pmts.iter_mut().find(|(p, _)| *p == pid) {
            Some(entry) => entry.1 = pmt,
            None => self.pmts.push((pid, pmt)),
        }
    }

    fn untrack(&mut self, pid: Pid) {
        if let Some(slot) = self.slots.get_mut(pid.index())
            && *slot > 0
        {
            let at = usize::from(*slot) - 1;
            *slot = 0;
            if at < self.roles.len() {
                self.roles.swap_remove(at);
                // The entry moved into `at` needs its slot updated.
                if let Some((moved, _)) = self.roles.get(at)
                    && let Some(s) = self.slots.get_mut(moved.index())
                {
                    *s = u16::try_from(at + 1).unwrap_or(0);
                }
            }
        }
        self.cc.reset(pid);
    }
}

#[inline]
fn role_in<'a>(
    slots: &[u16; Pid::COUNT],
    roles: &'a mut [(Pid, PidRole)],
    pid: Pid,
) -> Option<&'a mut PidRole> {
    let slot = usize::from(*slots.get(pid.index())?);
    roles.get_mut(slot.checked_sub(1)?).map(|(_, r)| r)
}

/// The sections of one PSI packet that need handling, copied out of its
/// assembler so that the borrow of the assembler ends before they are
/// handled. PAT and PMT repeat several times a second, so the buffers are
/// kept and reused rather than allocated per packet, and a repeat is not
/// copied at all.
#[derive(Debug, Default)]
struct SectionBuffer {
    bytes: Vec<u8>,
    /// Each section's bytes in `bytes`, or the assembler's error, in order.
    ranges: Vec<Result<Range<usize>, PsiError>>,
}

impl SectionBuffer {
    /// `table` is the PID's table id and `known` the CRC of its current
    /// table (see [`section_crc`]).
    fn collect(
        &mut self,
        asm: &mut SectionAssembler,
        packet: &TsPacket<'_>,
        lost: bool,
        table: u8,
        known: Option<u32>,
    ) {
        if lost {
            asm.reset();
        }
        self.bytes.clear();
        self.ranges.clear();
        asm.push(packet.payload_unit_start(), packet.payload(), |r| {
            // `handle_pat`/`handle_pmt` return at once, changing nothing,
            // for another table id or an unchanged table: such a section
            // can be left out, unless a section kept before it in this
            // packet might change the table and so the outcome.
            if let Ok(section) = &r
                && self.ranges.is_empty()
                && (section.first() != Some(&table) || known == Some(section_crc(section)))
            {
                return;
            }
            let entry = r.map(|section| {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(section);
                start..self.bytes.len()
            });
            self.ranges.push(entry);
        });
    }
}

/// The CRC of a section without its last 4 bytes, used to notice changes.
///
/// A long-form section has passed the assembler's CRC check (the CRC of the
/// whole section is zero). With this CRC (Annex A: no reflection, no final
/// XOR) that holds exactly when the trailing `CRC_32` field equals the CRC
/// of the bytes before it, so the field is read instead of computing the
/// CRC a second time. Short-form sections carry no CRC and are hashed.
fn section_crc(section: &[u8]) -> u32 {
    let long_form = section.get(1).is_some_and(|b| b & 0x80 != 0);
    match section.last_chunk::<4>() {
        Some(field) if long_form => u32::from_be_bytes(*field),
        _ => crc32(
            section
                .get(..section.len().saturating_sub(4))
                .unwrap_or_default(),
        ),
    }
}

impl EsState {
    fn new(codec: Codec) -> EsState {
        let scanner = match codec {
            Codec::H264 => Some(NalScanner::new(VideoCodec::H264)),
            Codec::Hevc => Some(NalScanner::new(VideoCodec::Hevc)),
            _ => None,
        };
        EsState {
            codec,
            header: Vec::new(),
            collecting_header: false,
            current: None,
            scanner,
        }
    }

    #[inline(always)]
    fn push<H: DemuxHandler>(
        &mut self,
        pid: Pid,
        index: u64,
        packet: &TsPacket<'_>,
        lost: bool,
        handler: &mut H,
    ) -> Result<(), PesError> {
        if packet.payload_unit_start() {
            return self.start_pes(pid, index, packet, handler);
        }
        if lost && let Some(au) = &mut self.current {
            au.damaged = true;
        }
        if self.collecting_header {
            return self.header_bytes(pid, packet.payload(), handler);
        }
        if self.current.is_some() {
            self.scan(pid, packet.payload(), handler);
        }
        Ok(())
    }

    /// A packet with `payload_unit_start_indicator`: a new PES packet.
    #[inline(never)]
    fn start_pes<H: DemuxHandler>(
        &mut self,
        pid: Pid,
        index: u64,
        packet: &TsPacket<'_>,
        handler: &mut H,
    ) -> Result<(), PesError> {
        self.end_pes(pid, handler);
        self.header.clear();
        self.collecting_header = true;
        self.current = Some(PendingAu {
            index,
            pts: None,
            dts: None,
            random_access_indicator: packet.random_access(),
            damaged: false,
        });
        if let Some(s) = &mut self.scanner {
            s.start();
        }
        self.header_bytes(pid, packet.payload(), handler)
    }

    /// Collects PES header bytes; once the header is complete, reports the
    /// PES start and scans the payload after it.
    fn header_bytes<H: DemuxHandler>(
        &mut self,
        pid: Pid,
        payload: &[u8],
        handler: &mut H,
    ) -> Result<(), PesError> {
        let parsed = if self.header.is_empty() {
            PesHeader::parse(pid, payload).map(|h| h.map(|h| (h, h.header_len)))
        } else {
            let before = self.header.len();
            let room = MAX_HEADER.saturating_sub(before);
            self.header
                .extend_from_slice(payload.get(..room.min(payload.len())).unwrap_or_default());
            PesHeader::parse(pid, &self.header)
                .map(|h| h.map(|h| (h, h.header_len.saturating_sub(before))))
        };
        let header = match parsed {
            Ok(Some(h)) => h,
            Ok(None) => {
                if self.header.is_empty() {
                    self.header.extend_from_slice(payload);
                }
                return Ok(());
            }
            Err(e) => {
                self.collecting_header = false;
                self.current = None;
                return Err(e);
            }
        };
        let (header, consumed_here) = header;
        self.collecting_header = false;
        self.header.clear();
        let Some(au) = &mut self.current else {
            return Ok(());
        };
        au.pts = header.pts;
        au.dts = header.dts;
        handler.on_pes(&PesStart {
            pid,
            codec: self.codec,
            index: au.index,
            header,
        });
        if self.scanner.is_none() {
            // Not a scanned codec: nothing more to learn from this PES.
            self.current = None;
            return Ok(());
        }
        self.scan(
            pid,
            payload.get(consumed_here..).unwrap_or_default(),
            handler,
        );
        Ok(())
    }

    fn scan<H: DemuxHandler>(&mut self, pid: Pid, bytes: &[u8], handler: &mut H) {
        let (Some(scanner), Some(au)) = (&mut self.scanner, &self.current) else {
            return;
        };
        if let Some(info) = scanner.push(bytes) {
            let au = *au;
            self.current = None;
            handler.on_access_unit(&AccessUnit {
                pid,
                codec: self.codec,
                index: au.index,
                pts: au.pts,
                dts: au.dts,
                info,
                random_access_indicator: au.random_access_indicator,
                damaged: au.damaged,
            });
        }
    }

    /// The PES packet in progress ended (new PUSI, or end of stream).
    fn end_pes<H: DemuxHandler>(&mut self, pid: Pid, handler: &mut H) {
        let Some(au) = self.current.take() else {
            return;
        };
        if self.collecting_header {
            // The header never completed: the PES is unusable.
            self.collecting_header = false;
            return;
        }
        if let Some(info) = self.scanner.as_mut().and_then(NalScanner::finish) {
            handler.on_access_unit(&AccessUnit {
                pid,
                codec: self.codec,
                index: au.index,
                pts: au.pts,
                dts: au.dts,
                info,
                random_access_indicator: au.random_access_indicator,
                damaged: au.damaged,
            });
        }
    }
}

/// [`Resync`] and [`Demux`] together: a byte stream in, handler calls out.
#[derive(Debug, Default)]
pub struct StreamDemux {
    pub resync: Resync,
    pub demux: Demux,
}

impl StreamDemux {
    pub fn new() -> StreamDemux {
        StreamDemux::default()
    }

    pub fn push<H: DemuxHandler>(&mut self, chunk: &[u8], handler: &mut H) {
        let demux = &mut self.demux;
        self.resync
            .push(chunk, |packet, _| demux.push_packet(packet, handler));
    }

    /// Like [`StreamDemux::push`], also handing every packet to `store` as a
    /// zero-copy `Bytes` slice of `chunk` before the demux sees it, with the
    /// index the demux gives it.
    pub fn push_bytes<H: DemuxHandler>(
        &mut self,
        chunk: &Bytes,
        handler: &mut H,
        mut store: impl FnMut(u64, Bytes),
    ) {
        let demux = &mut self.demux;
        self.resync.push(chunk, |packet, origin| {
            let bytes = match origin {
                Origin::Chunk(at) => chunk.slice(at..at + PACKET_SIZE),
                Origin::Carried => Bytes::copy_from_slice(packet),
            };
            store(demux.next_index(), bytes);
            demux.push_packet(packet, handler);
        });
    }

    pub fn finish<H: DemuxHandler>(&mut self, handler: &mut H) {
        let demux = &mut self.demux;
        self.resync
            .finish(|packet, _| demux.push_packet(packet, handler));
        self.demux.finish(handler);
    }

    pub fn resync_stats(&self) -> ResyncStats {
        self.resync.stats()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::packet::PacketBuilder;
    use crate::ts::pes::write_timestamp;
    use crate::ts::psi::{PatEntry, PmtStream, packetize_section};
    use crate::ts::types::Cc;

    /// Records every callback as a line of text.
    #[derive(Default)]
    struct Log(Vec<String>);

    impl DemuxHandler for Log {
        fn on_pat(&mut self, index: u64, pat: &Pat, _: &[u8]) {
            self.0.push(format!("{index} pat v{}", pat.version));
        }
        fn on_pmt(&mut self, index: u64, pid: Pid, pmt: &Pmt, _: &[u8]) {
            self.0.push(format!(
                "{index} pmt {pid} v{} n{}",
                pmt.version,
                pmt.streams.len()
            ));
        }
        fn on_pes(&mut self, pes: &PesStart) {
            let pts = pes.header.pts.map(Timestamp::ticks);
            self.0
                .push(format!("{} pes {} {pts:?}", pes.index, pes.pid));
        }
        fn on_access_unit(&mut self, au: &AccessUnit) {
            self.0.push(format!(
                "{} au {} {:?} damaged={}",
                au.index, au.pid, au.info.picture, au.damaged
            ));
        }
        fn on_error(&mut self, index: u64, error: &DemuxError) {
            self.0.push(format!("{index} error {error}"));
        }
    }

    struct Mux {
        packets: Vec<[u8; PACKET_SIZE]>,
        cc: [Cc; 0x2000],
    }

    impl Mux {
        fn new() -> Mux {
            Mux {
                packets: Vec::new(),
                cc: [Cc::default(); 0x2000],
            }
        }

        fn psi(&mut self, pid: u16, section: &[u8]) {
            let mut cc = self.cc[usize::from(pid)];
            self.packets
                .extend(packetize_section(Pid::new(pid), section, &mut cc));
            self.cc[usize::from(pid)] = cc;
        }

        fn pat(&mut self, version: u8) {
            let pat = Pat {
                transport_stream_id: 1,
                version,
                entries: vec![PatEntry {
                    program_number: 1,
                    pid: Pid::new(0x1000),
                }],
            };
            self.psi(0, &pat.to_section());
        }

        fn pmt(&mut self, version: u8, streams: &[(u8, u16)]) {
            let pmt = Pmt {
                program_number: 1,
                version,
                pcr_pid: Pid::new(0x100),
                descriptors: vec![],
                streams: streams
                    .iter()
                    .map(|&(stream_type, pid)| PmtStream {
                        stream_type,
                        pid: Pid::new(pid),
                        descriptors: vec![],
                    })
                    .collect(),
            };
            self.psi(0x1000, &pmt.to_section());
        }

        /// A PES packet split into TS packets whose payload sizes are
        /// `first` for the first packet and full after that.
        fn pes(&mut self, pid: u16, pts: u64, es: &[u8], first: usize) {
            let mut pes = vec![0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5];
            pes.extend_from_slice(&write_timestamp(2, Timestamp::new(pts)));
            pes.extend_from_slice(es);
            let mut rest: &[u8] = &pes;
            let mut start = true;
            while !rest.is_empty() {
                let mut b = PacketBuilder::new(Pid::new(pid));
                b.pusi = start;
                b.cc = self.cc[usize::from(pid)];
                self.cc[usize::from(pid)] = b.cc.next();
                let take = if start {
                    first.min(rest.len())
                } else {
                    rest.len()
                };
                let mut out = [0u8; PACKET_SIZE];
                let n = b.build(&rest[..take], &mut out);
                self.packets.push(out);
                rest = &rest[n..];
                start = false;
            }
        }

        fn run(&self) -> (Demux, Vec<String>) {
            let mut demux = Demux::new();
            let mut log = Log::default();
            for p in &self.packets {
                demux.push_packet(p, &mut log);
            }
            demux.finish(&mut log);
            (demux, log.0)
        }
    }

    const IDR: &[u8] = &[
        0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 0x88,
    ];
    const P_SLICE: &[u8] = &[0, 0, 0, 1, 0x09, 0x30, 0, 0, 1, 0x41, 0x9A];

    #[test]
    fn pes_header_split_across_packets() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        // Only 5 bytes of the 14-byte PES header in the first packet.
        m.pes(0x100, 900_000, IDR, 5);
        m.pes(0x100, 903_600, P_SLICE, 184);
        let (demux, log) = m.run();
        assert_eq!(
            log,
            vec![
                "0 pat v0",
                "1 pmt 0x1000 v0 n1",
                "2 pes 0x0100 Some(900000)",
                "2 au 0x0100 Idr damaged=false",
                "4 pes 0x0100 Some(903600)",
                "4 au 0x0100 NonIrap damaged=false",
            ]
        );
        assert_eq!(demux.stats().cc_errors, 0);
    }

    #[test]
    fn start_code_split_across_packets() {
        // The IDR's start code straddles the packet boundary at every offset.
        for first in 9 + 5 + 1..9 + 5 + IDR.len() {
            let mut m = Mux::new();
            m.pat(0);
            m.pmt(0, &[(0x1B, 0x100)]);
            m.pes(0x100, 0, IDR, first);
            let (_, log) = m.run();
            assert!(
                log.contains(&"2 au 0x0100 Idr damaged=false".to_owned()),
                "{first}: {log:?}"
            );
        }
    }

    #[test]
    fn pmt_change_retires_and_adds_streams() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100), (0x0F, 0x101)]);
        m.pes(0x101, 100, &[0xFF, 0xF1], 184);
        m.pmt(1, &[(0x1B, 0x100), (0x0F, 0x102)]);
        m.pes(0x101, 200, &[0xFF, 0xF1], 184);
        m.pes(0x102, 300, &[0xFF, 0xF1], 184);
        // Repeating the same PMT is not a change.
        m.pmt(1, &[(0x1B, 0x100), (0x0F, 0x102)]);
        let (demux, log) = m.run();
        assert!(log.contains(&"3 pmt 0x1000 v1 n2".to_owned()), "{log:?}");
        assert!(
            !log.iter().any(|l| l.contains("pes 0x0101 Some(200)")),
            "{log:?}"
        );
        assert!(
            log.contains(&"5 pes 0x0102 Some(300)".to_owned()),
            "{log:?}"
        );
        assert_eq!(demux.stats().psi_changes, 1);
        assert_eq!(demux.pmts().count(), 1);
    }

    #[test]
    fn lost_packet_marks_access_unit_damaged() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        // An access unit whose first VCL NAL is in its third packet.
        let mut es = vec![0, 0, 0, 1, 0x06, 5];
        es.extend(std::iter::repeat_n(0x80, 400));
        es.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        m.pes(0x100, 0, &es, 184);
        m.packets.remove(3);
        let (demux, log) = m.run();
        assert_eq!(demux.stats().cc_errors, 1);
        assert!(
            log.contains(&"2 au 0x0100 Idr damaged=true".to_owned()),
            "{log:?}"
        );
    }

    #[test]
    fn transport_error_packets_are_counted_and_ignored() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        m.pes(0x100, 0, IDR, 184);
        m.packets[2][1] |= 0x80;
        let (demux, log) = m.run();
        assert_eq!(demux.stats().transport_errors, 1);
        assert!(!log.iter().any(|l| l.contains("pes")), "{log:?}");
    }

    #[test]
    fn bad_pes_start_is_an_error_not_a_frame() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        m.pes(0x100, 0, IDR, 184);
        // Break the start code.
        let at = TsPacket::new(&m.packets[2]).unwrap().payload_offset();
        m.packets[2][at + 2] = 7;
        let (demux, log) = m.run();
        assert_eq!(demux.stats().pes_errors, 1);
        assert!(
            log.iter()
                .any(|l| l.starts_with("2 error PID 0x0100: PES does not start")),
            "{log:?}"
        );
        assert!(!log.iter().any(|l| l.contains(" au ")), "{log:?}");
    }
}
