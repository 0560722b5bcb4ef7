//! Demultiplexer for a whole transport stream: PSI tracking, PES framing,
//! continuity checking and splice-point (NAL) scanning.
//!
//! [`Demux`] is sans-IO: feed it packets with [`Demux::push_packet`] or,
//! faster, runs of them with [`Demux::push_packets`] (or a raw byte stream
//! through [`StreamDemux`]) and it calls back a
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

use super::continuity::{self, Continuity};
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

/// Everything the demux keeps per PID outside its role, in one entry so
/// that the bookkeeping of a packet touches one place, not three tables.
#[derive(Debug, Clone, Copy)]
struct PidEntry {
    packets: u64,
    cc_errors: u64,
    /// Index into `Demux::roles` + 1; 0 = not tracked.
    slot: u16,
    /// Continuity state, see [`continuity::step`]; stays 0 for the null PID.
    cc: u8,
    /// A packet with a payload but without `payload_unit_start_indicator`
    /// whose counter follows in order needs nothing beyond counting: the
    /// PID is not tracked, or is an elementary stream with no PES header or
    /// access unit pending. Never set for the null PID.
    quiet: bool,
}

impl PidEntry {
    const UNTRACKED: PidEntry = PidEntry {
        packets: 0,
        cc_errors: 0,
        slot: 0,
        cc: 0,
        quiet: true,
    };
}

/// See the module docs.
#[derive(Debug)]
pub struct Demux {
    next_index: u64,
    pids: Box<[PidEntry; Pid::COUNT]>,
    roles: Vec<(Pid, PidRole)>,
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
            pids: Box::new([PidEntry::UNTRACKED; Pid::COUNT]),
            roles: Vec::new(),
            stats: DemuxStats::default(),
            pat_crc: None,
            pmt_crcs: Vec::new(),
            pat: None,
            pmts: Vec::new(),
            sections: SectionBuffer::default(),
        };
        if let Some(null) = demux.pids.get_mut(Pid::NULL.index()) {
            null.quiet = false;
        }
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
        self.pids
            .get(pid.index())
            .map(PidEntry::counters)
            .unwrap_or_default()
    }

    /// PIDs that carried at least one packet, with their counters.
    pub fn pids(&self) -> impl Iterator<Item = (Pid, PidCounters)> + '_ {
        self.pids
            .iter()
            .enumerate()
            .filter(|(_, e)| e.packets > 0)
            .map(|(pid, e)| (Pid::new(pid as u16), e.counters()))
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
        let Some(entry) = self.pids.get_mut(pid.index()) else {
            return;
        };
        entry.quiet = role.quiet();
        match entry.slot {
            0 => {
                self.roles.push((pid, role));
                entry.slot = u16::try_from(self.roles.len()).unwrap_or(0);
            }
            slot => {
                if let Some(tracked) = self.roles.get_mut(usize::from(slot) - 1) {
                    tracked.1 = role;
                }
            }
        }
    }

    #[inline]
    fn role_mut(&mut self, pid: Pid) -> Option<&mut PidRole> {
        role_in(&self.pids, &mut self.roles, pid)
    }

    /// Feeds one 188-byte packet; see [`Demux::push_packets`].
    pub fn push_packet<H: DemuxHandler>(&mut self, bytes: &[u8; PACKET_SIZE], handler: &mut H) {
        self.push_packets(std::slice::from_ref(bytes), handler);
    }

    /// Feeds consecutive packets, e.g. a run from [`Resync::push_runs`].
    ///
    /// This is the per-packet hot path. The usual packet — no PES or
    /// section start, counter in order, on a PID that needs nothing more
    /// (see `PidEntry::quiet`) — is handled in this loop; everything else
    /// is out of line, which keeps the loop's state in registers.
    pub fn push_packets<H: DemuxHandler>(
        &mut self,
        packets: &[[u8; PACKET_SIZE]],
        handler: &mut H,
    ) {
        // No callback can reach the demux, so the counters can be bumped
        // for the whole run up front.
        let first = self.next_index;
        let count = packets.len() as u64;
        self.next_index += count;
        self.stats.packets += count;
        for (index, bytes) in (first..).zip(packets) {
            self.push_one(index, bytes, handler);
        }
    }

    #[inline(always)]
    fn push_one<H: DemuxHandler>(
        &mut self,
        index: u64,
        bytes: &[u8; PACKET_SIZE],
        handler: &mut H,
    ) {
        let &[_, b1, b2, b3, ..] = bytes;
        let pid = usize::from(b1 & 0x1F) << 8 | usize::from(b2);
        // No transport_error_indicator, no payload_unit_start_indicator, a
        // payload that needs no checking (`TsPacket::plain`); then, on a
        // quiet PID, a counter in order is all there is to check (§2.4.3.3).
        if let Some(entry) = self.pids.get_mut(pid)
            && b1 & 0xC0 == 0
            && entry.quiet
            && continuity::follows(entry.cc, b3)
            && let Some(packet) = TsPacket::plain(bytes)
        {
            entry.packets += 1;
            entry.cc = continuity::in_order(b3);
            handler.on_packet(index, &packet);
            return;
        }
        self.push_checked(index, bytes, handler);
    }

    /// Every packet that [`Demux::push_one`] does not finish itself.
    #[inline(never)]
    fn push_checked<H: DemuxHandler>(
        &mut self,
        index: u64,
        bytes: &[u8; PACKET_SIZE],
        handler: &mut H,
    ) {
        let packet = match TsPacket::from_array(bytes) {
            Ok(p) => p,
            Err(e) => return self.malformed(index, e, handler),
        };
        let &[_, b1, _, b3, ..] = bytes;
        let pid = packet.pid();
        let Some(entry) = self.pids.get_mut(pid.index()) else {
            return;
        };
        entry.packets += 1;
        if b1 & 0x80 != 0 {
            return self.transport_error();
        }
        handler.on_packet(index, &packet);
        // Not scrambled, with payload, counter in order (never so on the
        // null PID, whose state stays 0): the usual case, taken here.
        let lost =
            if b3 & 0xD0 == 0x10 && !packet.discontinuity() && continuity::follows(entry.cc, b3) {
                entry.cc = continuity::in_order(b3);
                if let Some(pcr) = packet.pcr() {
                    handler.on_pcr(index, pid, pcr);
                }
                if entry.quiet && b1 & 0x40 == 0 {
                    return;
                }
                false
            } else {
                match self.check_unusual(index, &packet, handler) {
                    Some(lost) => lost,
                    None => return,
                }
            };
        let Some(entry) = self.pids.get_mut(pid.index()) else {
            return;
        };
        match self
            .roles
            .get_mut(usize::from(entry.slot).wrapping_sub(1))
            .map(|(_, r)| r)
        {
            Some(PidRole::Es(es)) => {
                let result = es.push(pid, index, &packet, lost, handler);
                entry.quiet = es.quiet();
                if let Err(e) = result {
                    self.pes_error(index, e, handler);
                }
            }
            // The usual PSI packet repeats the current table: nothing to do.
            Some(PidRole::Pat(asm)) if unchanged_repeat(asm, &packet, TABLE_PAT, self.pat_crc) => {}
            Some(PidRole::Pmt(asm))
                if unchanged_repeat(asm, &packet, TABLE_PMT, known_crc(&self.pmt_crcs, pid)) => {}
            Some(PidRole::Pat(_) | PidRole::Pmt(_)) => {
                self.push_psi(index, pid, &packet, lost, handler);
            }
            None => {}
        }
    }

    /// The continuity and scrambling checks for a packet that is not the
    /// usual case in [`Demux::push_checked`]: `Some(lost)` when its payload
    /// is to be used, `lost` telling whether packets before it were.
    #[inline(never)]
    fn check_unusual<H: DemuxHandler>(
        &mut self,
        index: u64,
        packet: &TsPacket<'_>,
        handler: &mut H,
    ) -> Option<bool> {
        let pid = packet.pid();
        if pid == Pid::NULL {
            return None;
        }
        let entry = self.pids.get_mut(pid.index())?;
        let continuity = if packet.has_payload() {
            continuity::step(&mut entry.cc, packet)
        } else {
            Continuity::Unchecked
        };
        if let Continuity::Error { expected, got } = continuity {
            self.cc_error(index, pid, expected, got, handler);
        }
        if let Some(pcr) = packet.pcr() {
            handler.on_pcr(index, pid, pcr);
        }
        if continuity == Continuity::Duplicate {
            return None;
        }
        if packet.scrambling() != 0 {
            self.stats.scrambled_packets += 1;
            return None;
        }
        if !packet.has_payload() {
            return None;
        }
        Some(continuity.is_error())
    }

    #[cold]
    #[inline(never)]
    fn transport_error(&mut self) {
        // §2.4.3.2: at least one uncorrectable bit error; nothing in the
        // packet, not even its PID, can be trusted.
        self.stats.transport_errors += 1;
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
        if let Some(entry) = self.pids.get_mut(pid.index()) {
            entry.cc_errors += 1;
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

    /// A packet on a PAT or PMT PID that is not an unchanged repeat (see
    /// [`unchanged_repeat`]).
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
        let (asm, table, known) = match role_in(&self.pids, &mut self.roles, pid) {
            Some(PidRole::Pat(asm)) => (asm, TABLE_PAT, self.pat_crc),
            Some(PidRole::Pmt(asm)) => (asm, TABLE_PMT, known_crc(&self.pmt_crcs, pid)),
            Some(PidRole::Es(_)) | None => return,
        };
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
                if let Some(entry) = self.pids.get_mut(pid.index()) {
                    entry.quiet = es.quiet();
                }
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
        let Some(entry) = self.pids.get_mut(pid.index()) else {
            return;
        };
        // Continuity starts afresh, as for a PID never seen.
        entry.cc = 0;
        entry.quiet = pid != Pid::NULL;
        if entry.slot > 0 {
            let at = usize::from(entry.slot) - 1;
            entry.slot = 0;
            if at < self.roles.len() {
                self.roles.swap_remove(at);
                // The entry moved into `at` needs its slot updated.
                if let Some((moved, _)) = self.roles.get(at)
                    && let Some(e) = self.pids.get_mut(moved.index())
                {
                    e.slot = u16::try_from(at + 1).unwrap_or(0);
                }
            }
        }
    }
}

impl PidEntry {
    fn counters(&self) -> PidCounters {
        PidCounters {
            packets: self.packets,
            cc_errors: self.cc_errors,
        }
    }
}

impl PidRole {
    /// See `PidEntry::quiet`.
    fn quiet(&self) -> bool {
        match self {
            PidRole::Es(es) => es.quiet(),
            PidRole::Pat(_) | PidRole::Pmt(_) => false,
        }
    }
}

#[inline]
fn role_in<'a>(
    pids: &[PidEntry; Pid::COUNT],
    roles: &'a mut [(Pid, PidRole)],
    pid: Pid,
) -> Option<&'a mut PidRole> {
    let slot = usize::from(pids.get(pid.index())?.slot);
    roles.get_mut(slot.checked_sub(1)?).map(|(_, r)| r)
}

/// Whether a packet on a PSI PID whose table id is `table` and whose
/// current table has the CRC `known` (see [`section_crc`]) only repeats the
/// section last verified, which is that table or one `handle_pat` /
/// `handle_pmt` ignore: then the packet changes nothing (see
/// [`SectionAssembler::repeated`], and `SectionBuffer::collect` for when a
/// section is ignored).
#[inline(always)]
fn unchanged_repeat(
    asm: &SectionAssembler,
    packet: &TsPacket<'_>,
    table: u8,
    known: Option<u32>,
) -> bool {
    asm.repeated(packet.payload_unit_start(), packet.payload())
        .is_some_and(|section| {
            section.first() != Some(&table) || known == Some(section_crc(section))
        })
}

/// The CRC of the current PMT on `pid`, if any.
#[inline]
fn known_crc(crcs: &[(Pid, u32)], pid: Pid) -> Option<u32> {
    crcs.iter().find(|(p, _)| *p == pid).map(|(_, crc)| *crc)
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
#[inline]
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

    /// Whether a packet continuing the current PES packet has nothing to
    /// add: no header being collected, no access unit waiting for its kind.
    #[inline]
    fn quiet(&self) -> bool {
        self.current.is_none() && !self.collecting_header
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

    /// A packet with `payload_unit_start_indicator`: a new PES packet. The
    /// usual PES header fits in its first packet and is parsed in place;
    /// one that continues in the next packet is collected.
    #[inline(always)]
    fn start_pes<H: DemuxHandler>(
        &mut self,
        pid: Pid,
        index: u64,
        packet: &TsPacket<'_>,
        handler: &mut H,
    ) -> Result<(), PesError> {
        if self.current.is_some() {
            self.end_pes(pid, handler);
        }
        // Now no access unit is pending and no header is being collected
        // (`collecting_header` implies `current`).
        let payload = packet.payload();
        let header = match PesHeader::parse(pid, payload) {
            Ok(Some(header)) => header,
            Ok(None) => {
                self.await_header(index, packet);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        handler.on_pes(&PesStart {
            pid,
            codec: self.codec,
            index,
            header,
        });
        if let Some(scanner) = &mut self.scanner {
            // A scanned codec: the access unit is pending until the scan
            // decides its kind.
            scanner.start();
            self.current = Some(PendingAu {
                index,
                pts: header.pts,
                dts: header.dts,
                random_access_indicator: packet.random_access(),
                damaged: false,
            });
            self.scan(
                pid,
                payload.get(header.header_len..).unwrap_or_default(),
                handler,
            );
        }
        Ok(())
    }

    /// A PES packet whose header continues in the next packet.
    #[cold]
    #[inline(never)]
    fn await_header(&mut self, index: u64, packet: &TsPacket<'_>) {
        self.header.clear();
        self.header.extend_from_slice(packet.payload());
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

    #[inline(always)]
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
    #[inline(never)]
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
            .push_runs(chunk, |run, _| demux.push_packets(run, handler));
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

    /// Every callback of a handler, for comparing two demuxers.
    #[derive(Default)]
    struct Trace(Vec<Event>);

    #[derive(Debug, PartialEq)]
    enum Event {
        /// Index, header bytes, payload offset, random access,
        /// discontinuity, PCR: all `on_packet` shows a handler.
        Packet(u64, [u8; 4], usize, bool, bool, Option<Pcr>),
        Other(String),
    }

    impl DemuxHandler for Trace {
        fn on_packet(&mut self, index: u64, packet: &TsPacket<'_>) {
            let &[b0, b1, b2, b3, ..] = packet.as_bytes();
            self.0.push(Event::Packet(
                index,
                [b0, b1, b2, b3],
                packet.payload_offset(),
                packet.random_access(),
                packet.discontinuity(),
                packet.pcr(),
            ));
        }
        fn on_pat(&mut self, index: u64, pat: &Pat, section: &[u8]) {
            self.0
                .push(Event::Other(format!("{index} {pat:?} {section:?}")));
        }
        fn on_pmt(&mut self, index: u64, pid: Pid, pmt: &Pmt, section: &[u8]) {
            self.0
                .push(Event::Other(format!("{index} {pid} {pmt:?} {section:?}")));
        }
        fn on_pes(&mut self, pes: &PesStart) {
            self.0.push(Event::Other(format!("{pes:?}")));
        }
        fn on_access_unit(&mut self, au: &AccessUnit) {
            self.0.push(Event::Other(format!("{au:?}")));
        }
        fn on_pcr(&mut self, index: u64, pid: Pid, pcr: Pcr) {
            self.0.push(Event::Other(format!("{index} {pid} {pcr:?}")));
        }
        fn on_error(&mut self, index: u64, error: &DemuxError) {
            self.0.push(Event::Other(format!("{index} {error:?}")));
        }
    }

    /// The demux's per-packet work with none of its shortcuts (the quiet
    /// paths, the in-order path, the PSI repeat test): every packet fully
    /// checked, then handed to its role. The shortcuts must agree with it.
    fn push_reference<H: DemuxHandler>(
        demux: &mut Demux,
        bytes: &[u8; PACKET_SIZE],
        handler: &mut H,
    ) {
        let index = demux.next_index;
        demux.next_index += 1;
        demux.stats.packets += 1;
        let packet = match TsPacket::from_array(bytes) {
            Ok(p) => p,
            Err(e) => return demux.malformed(index, e, handler),
        };
        let pid = packet.pid();
        demux.pids[pid.index()].packets += 1;
        if packet.transport_error() {
            demux.stats.transport_errors += 1;
            return;
        }
        handler.on_packet(index, &packet);
        let Some(lost) = demux.check_unusual(index, &packet, handler) else {
            return;
        };
        match role_in(&demux.pids, &mut demux.roles, pid) {
            Some(PidRole::Es(es)) => {
                let result = es.push(pid, index, &packet, lost, handler);
                demux.pids[pid.index()].quiet = es.quiet();
                if let Err(e) = result {
                    demux.pes_error(index, e, handler);
                }
            }
            Some(PidRole::Pat(_) | PidRole::Pmt(_)) => {
                demux.push_psi(index, pid, &packet, lost, handler);
            }
            None => {}
        }
    }

    /// Feeds `packets` to a demux through [`push_reference`] and to another
    /// in runs of `run` through [`Demux::push_packets`], and compares all
    /// they report.
    fn assert_shortcuts_agree(packets: &[[u8; PACKET_SIZE]], run: usize) {
        let (mut reference, mut fast) = (Demux::new(), Demux::new());
        let (mut want, mut got) = (Trace::default(), Trace::default());
        for p in packets {
            push_reference(&mut reference, p, &mut want);
        }
        for r in packets.chunks(run.max(1)) {
            fast.push_packets(r, &mut got);
        }
        reference.finish(&mut want);
        fast.finish(&mut got);
        if let Some(at) =
            (0..want.0.len().max(got.0.len())).find(|&i| want.0.get(i) != got.0.get(i))
        {
            panic!(
                "callback {at} differs: reference {:?}, fast {:?}",
                want.0.get(at),
                got.0.get(at)
            );
        }
        assert_eq!(fast.stats(), reference.stats());
        assert_eq!(fast.next_index(), reference.next_index());
        assert!(fast.pids().eq(reference.pids()));
        assert_eq!(fast.pat(), reference.pat());
        assert!(fast.pmts().eq(reference.pmts()));
    }

    fn sample_stream() -> Vec<[u8; PACKET_SIZE]> {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100), (0x0F, 0x101)]);
        let mut es = vec![0, 0, 0, 1, 0x06, 5];
        es.extend(std::iter::repeat_n(0x80, 400));
        es.extend_from_slice(&[0, 0, 1, 0x65, 0x88]);
        for i in 0..4 {
            m.pes(0x100, 3600 * i, &es, 184);
            m.pes(0x101, 1800 * i, &[0xFF, 0xF1, 0x50, 0x80], 184);
            m.pes(0x100, 3600 * i + 1800, P_SLICE, 20);
            m.pat(0);
            m.pmt(0, &[(0x1B, 0x100), (0x0F, 0x101)]);
        }
        m.packets
    }

    /// Damages `packets` in place from `seed`: mostly header and adaptation
    /// field bytes, where the shortcuts decide, and dropped packets.
    fn damage(packets: &mut Vec<[u8; PACKET_SIZE]>, seed: u64, edits: usize) {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..edits {
            if packets.is_empty() {
                return;
            }
            let r = next();
            let p = (r as usize >> 8) % packets.len();
            let at = match r % 4 {
                0 => 1 + (r as usize >> 40) % 3,
                1 => 4 + (r as usize >> 40) % 16,
                2 => (r as usize >> 40) % PACKET_SIZE,
                _ => {
                    packets.remove(p);
                    continue;
                }
            };
            packets[p][at] = (r >> 32) as u8;
        }
    }

    #[test]
    fn shortcuts_agree_with_the_reference_on_captures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ts"))
            .collect();
        names.sort();
        assert!(!names.is_empty());
        for (n, name) in names.iter().enumerate() {
            let data = std::fs::read(name).unwrap();
            let (whole, _) = data.as_chunks::<PACKET_SIZE>();
            for round in 0..4u64 {
                let mut packets = whole.to_vec();
                damage(&mut packets, n as u64 * 31 + round, round as usize * 40);
                assert_shortcuts_agree(&packets, 7);
            }
        }
    }

    proptest::proptest! {
        /// The shortcuts agree with the reference on damaged streams, fed in
        /// runs of any length.
        #[test]
        fn shortcuts_agree_with_the_reference(seed: u64, edits in 0usize..30, run in 1usize..12) {
            let mut packets = sample_stream();
            damage(&mut packets, seed, edits);
            assert_shortcuts_agree(&packets, run);
        }
    }

    #[test]
    fn a_malformed_pmt_is_reported_each_time_it_repeats() {
        // A PMT that passes its CRC but does not parse does not replace the
        // current table, so its repeats are not skipped as unchanged.
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        let mut pmt = Pmt {
            program_number: 1,
            version: 0,
            pcr_pid: Pid::new(0x100),
            descriptors: vec![],
            streams: vec![],
        }
        .to_section();
        // program_info_length = 0xFFF.
        pmt[10] = 0xFF;
        pmt[11] = 0xFF;
        let len = pmt.len();
        let crc = crc32(&pmt[..len - 4]);
        pmt[len - 4..].copy_from_slice(&crc.to_be_bytes());
        for _ in 0..3 {
            m.psi(0x1000, &pmt);
        }
        let (demux, log) = m.run();
        assert_eq!(demux.stats().psi_errors, 3, "{log:?}");
    }

    #[test]
    fn access_unit_without_a_slice_is_reported_at_the_next_start() {
        let mut m = Mux::new();
        m.pat(0);
        m.pmt(0, &[(0x1B, 0x100)]);
        // Parameter sets and no slice, then a P slice.
        m.pes(0x100, 0, &[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 1, 0x67, 1], 184);
        m.pes(0x100, 3600, P_SLICE, 184);
        let (_, log) = m.run();
        assert_eq!(
            log[2..],
            [
                "2 pes 0x0100 Some(0)",
                "2 au 0x0100 NoPicture damaged=false",
                "3 pes 0x0100 Some(3600)",
                "3 au 0x0100 NonIrap damaged=false",
            ],
            "{log:?}"
        );
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
