//! Where a consumer can begin receiving a stream, and how good that place is.
//!
//! Only an IDR access unit with its parameter sets in band is a clean start
//! (a *splice point*, [`crate::ts::gop`]): nothing after it references a
//! picture before it. A stream may go without one for longer than the ring
//! holds (periodic intra refresh, open GOP with rare IDRs, audio only); it
//! must still flow, so weaker places are recorded too and a consumer that
//! starts at one is told which kind it got ([`StartKind`]), so the shell can
//! say so in its logs and API.

use bytes::Bytes;

use crate::ts::gop::SplicePoint;
use crate::ts::psi::packetize_section;
use crate::ts::{Cc, PACKET_SIZE, Pid, Timestamp};

/// How clean a start is, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartKind {
    /// An IDR splice point: every picture decodes.
    Idr,
    /// A random access point ([`RandomAccessReason`]): decoding can begin,
    /// but pictures up to the recovery point may be damaged.
    RandomAccess,
    /// Just the start of a PES packet on the video (or any) PID: a decoder
    /// shows nothing clean until its next random access point.
    PesStart,
}

/// Why an access unit (or PES packet) is a random access point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomAccessReason {
    /// HEVC CRA (NAL 21): RASL pictures after it may reference the past.
    Cra,
    /// HEVC BLA (NAL 16–18).
    Bla,
    /// An IDR that is not a splice point because its parameter sets were
    /// not in band: a decoder that has them from earlier can start here.
    IdrWithoutParameterSets,
    /// H.264 recovery point SEI (open-GOP I picture, intra-refresh wave).
    RecoveryPoint,
    /// `random_access_indicator` in the adaptation field (§2.4.3.5) of a
    /// video PES start that is none of the above.
    RandomAccessIndicator,
    /// A PES start of the audio PID of a stream without video: every audio
    /// frame decodes on its own, so this is as clean as an IDR and taken
    /// as readily.
    AudioPes,
}

/// The PAT and one program's PMT, sent before a start point so that the
/// consumer can find its streams without waiting for the next repetition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramPsi {
    /// The PAT section (with CRC).
    pub pat: Bytes,
    pub pmt_pid: Pid,
    /// The PMT section (with CRC).
    pub pmt: Bytes,
}

impl ProgramPsi {
    /// PAT and PMT packets stamped with the given continuity counters (which
    /// advance), as [`SplicePoint::psi_packets`] does.
    pub fn packets(&self, pat_cc: &mut Cc, pmt_cc: &mut Cc) -> Vec<[u8; PACKET_SIZE]> {
        let mut packets = packetize_section(Pid::PAT, &self.pat, pat_cc);
        packets.extend(packetize_section(self.pmt_pid, &self.pmt, pmt_cc));
        packets
    }

    /// How many packets [`ProgramPsi::packets`] makes for the PAT and for
    /// the PMT: a pointer field and the section, 184 payload bytes a packet.
    pub fn packet_counts(&self) -> (usize, usize) {
        let count = |section: &Bytes| (section.len() + 1).div_ceil(PACKET_SIZE - 4).max(1);
        (count(&self.pat), count(&self.pmt))
    }
}

impl From<&SplicePoint> for ProgramPsi {
    fn from(point: &SplicePoint) -> ProgramPsi {
        ProgramPsi {
            pat: point.pat.clone(),
            pmt_pid: point.pmt_pid,
            pmt: point.pmt.clone(),
        }
    }
}

/// A random access point weaker than an IDR; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomAccessPoint {
    /// Demux index of the packet where its PES packet starts.
    pub index: u64,
    pub pts: Option<Timestamp>,
    pub pid: Pid,
    pub reason: RandomAccessReason,
    /// PSI in force when it was found, if any was known.
    pub psi: Option<ProgramPsi>,
}

/// A place a consumer starts at: every packet from `index` on, after the
/// PSI when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartPoint {
    pub kind: StartKind,
    pub index: u64,
    pub pts: Option<Timestamp>,
    /// The PID whose access unit or PES packet starts here.
    pub pid: Pid,
    /// Why a [`StartKind::RandomAccess`] start is one.
    pub reason: Option<RandomAccessReason>,
    pub psi: Option<ProgramPsi>,
}

impl From<&SplicePoint> for StartPoint {
    fn from(point: &SplicePoint) -> StartPoint {
        StartPoint {
            kind: StartKind::Idr,
            index: point.index,
            pts: point.pts,
            pid: point.video_pid,
            reason: None,
            psi: Some(ProgramPsi::from(point)),
        }
    }
}

impl From<&RandomAccessPoint> for StartPoint {
    fn from(point: &RandomAccessPoint) -> StartPoint {
        StartPoint {
            kind: StartKind::RandomAccess,
            index: point.index,
            pts: point.pts,
            pid: point.pid,
            reason: Some(point.reason),
            psi: point.psi.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ts::psi::{Pat, PatEntry, Pmt, PmtStream};

    #[test]
    fn psi_packets_match_the_splice_points_and_their_count() {
        let pat = Pat {
            transport_stream_id: 1,
            version: 0,
            entries: vec![PatEntry {
                program_number: 1,
                pid: Pid::new(0x1000),
            }],
        };
        let mut pmt = Pmt {
            program_number: 1,
            version: 0,
            pcr_pid: Pid::new(0x100),
            descriptors: vec![],
            streams: vec![PmtStream {
                stream_type: 0x1B,
                pid: Pid::new(0x100),
                descriptors: vec![],
            }],
        };
        // A PMT long enough to need two packets.
        pmt.descriptors = vec![0x05, 200].into_iter().chain([b'x'; 200]).collect();
        let point = SplicePoint {
            index: 7,
            pts: Some(Timestamp::new(1)),
            dts: None,
            program_number: 1,
            video_pid: Pid::new(0x100),
            pmt_pid: Pid::new(0x1000),
            pat: Bytes::from(pat.to_section()),
            pmt: Bytes::from(pmt.to_section()),
        };
        let psi = ProgramPsi::from(&point);
        let (mut a, mut b) = (Cc::new(3), Cc::new(9));
        let (mut c, mut d) = (Cc::new(3), Cc::new(9));
        let ours = psi.packets(&mut a, &mut b);
        assert_eq!(ours, point.psi_packets(&mut c, &mut d));
        assert_eq!((a, b), (c, d));
        assert_eq!(psi.packet_counts(), (1, 2));
        assert_eq!(ours.len(), 3);
    }
}
