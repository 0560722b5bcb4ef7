//! GOP indexer: finds where a decoder can start in one program's video.
//!
//! A *splice point* is an IDR access unit (see [`crate::ts::nal`]) whose
//! parameter sets travel with it, in a program whose PAT and PMT are known.
//! A consumer that starts there — an encoder being primed, a player, the
//! output after a failover — is sent the PAT and PMT first, then every packet
//! from the splice point's index on. Open-GOP I pictures, CRA/BLA pictures
//! and intra-refresh recovery points are not splice points: their leading
//! pictures may reference frames the consumer never got.

use bytes::Bytes;

use super::demux::{AccessUnit, DemuxHandler};
use super::nal::PictureKind;
use super::packet::PACKET_SIZE;
use super::psi::{Pat, Pmt, packetize_section};
use super::types::{Cc, Pid, Timestamp};

/// Which program the indexer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgramSelector {
    /// The first program in the PAT whose PMT has a video stream.
    #[default]
    FirstWithVideo,
    Number(u16),
}

/// Where a decoder can start; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplicePoint {
    /// Index (see [`crate::ts::demux`]) of the packet where the IDR's PES
    /// packet starts.
    pub index: u64,
    pub pts: Option<Timestamp>,
    pub dts: Option<Timestamp>,
    pub program_number: u16,
    pub video_pid: Pid,
    pub pmt_pid: Pid,
    /// The PAT and PMT sections in force at the splice point.
    pub pat: Bytes,
    pub pmt: Bytes,
}

impl SplicePoint {
    /// PAT and PMT packets to send before the splice point, stamped with
    /// the given continuity counters (which advance).
    pub fn psi_packets(&self, pat_cc: &mut Cc, pmt_cc: &mut Cc) -> Vec<[u8; PACKET_SIZE]> {
        let mut packets = packetize_section(Pid::PAT, &self.pat, pat_cc);
        packets.extend(packetize_section(self.pmt_pid, &self.pmt, pmt_cc));
        packets
    }
}

#[derive(Debug, Clone)]
struct Program {
    number: u16,
    pmt_pid: Pid,
    video_pid: Pid,
    pmt: Bytes,
}

/// Follows one program and queues its splice points; see the module docs.
#[derive(Debug, Default)]
pub struct GopIndexer {
    selector: ProgramSelector,
    pat: Option<(Bytes, Vec<(u16, Pid)>)>,
    program: Option<Program>,
    ready: std::collections::VecDeque<SplicePoint>,
    /// IDRs skipped because PSI was unknown, the access unit was damaged or
    /// parameter sets were missing.
    pub skipped_idrs: u64,
}

impl GopIndexer {
    pub fn new(selector: ProgramSelector) -> GopIndexer {
        GopIndexer {
            selector,
            ..GopIndexer::default()
        }
    }

    /// The next splice point found, oldest first.
    pub fn poll(&mut self) -> Option<SplicePoint> {
        self.ready.pop_front()
    }

    /// The video PID being indexed, once known.
    pub fn video_pid(&self) -> Option<Pid> {
        self.program.as_ref().map(|p| p.video_pid)
    }

    fn wants(&self, program_number: u16, pmt: &Pmt) -> bool {
        match self.selector {
            ProgramSelector::Number(n) => n == program_number,
            ProgramSelector::FirstWithVideo => {
                pmt.video().is_some()
                    && self
                        .program
                        .as_ref()
                        .is_none_or(|p| p.number == program_number)
            }
        }
    }
}

impl DemuxHandler for GopIndexer {
    fn on_pat(&mut self, _index: u64, pat: &Pat, section: &[u8]) {
        let programs: Vec<(u16, Pid)> = pat.programs().map(|e| (e.program_number, e.pid)).collect();
        if let Some(p) = &self.program
            && !programs.contains(&(p.number, p.pmt_pid))
        {
            self.program = None;
        }
        self.pat = Some((Bytes::copy_from_slice(section), programs));
    }

    fn on_pmt(&mut self, _index: u64, pid: Pid, pmt: &Pmt, section: &[u8]) {
        let listed = self
            .pat
            .as_ref()
            .is_some_and(|(_, programs)| programs.contains(&(pmt.program_number, pid)));
        if !listed || !self.wants(pmt.program_number, pmt) {
            return;
        }
        match pmt.video() {
            Some(video) => {
                self.program = Some(Program {
                    number: pmt.program_number,
                    pmt_pid: pid,
                    video_pid: video.pid,
                    pmt: Bytes::copy_from_slice(section),
                });
            }
            None => self.program = None,
        }
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        if au.info.picture != PictureKind::Idr {
            return;
        }
        let (Some(program), Some((pat, _))) = (&self.program, &self.pat) else {
            self.skipped_idrs += 1;
            return;
        };
        if au.pid != program.video_pid {
            return;
        }
        if au.damaged || !au.info.parameter_sets_in_band {
            self.skipped_idrs += 1;
            return;
        }
        self.ready.push_back(SplicePoint {
            index: au.index,
            pts: au.pts,
            dts: au.dts,
            program_number: program.number,
            video_pid: program.video_pid,
            pmt_pid: program.pmt_pid,
            pat: pat.clone(),
            pmt: program.pmt.clone(),
        });
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::probe::Prober;
    use crate::ts::demux::StreamDemux;

    fn splice_points(capture: &[u8]) -> (Vec<SplicePoint>, Vec<[u8; PACKET_SIZE]>) {
        let mut stream = StreamDemux::new();
        let mut indexer = GopIndexer::new(ProgramSelector::FirstWithVideo);
        let mut packets = Vec::new();
        stream.resync.push(capture, |p, _| packets.push(*p));
        for p in &packets {
            stream.demux.push_packet(p, &mut indexer);
        }
        stream.demux.finish(&mut indexer);
        let mut points = Vec::new();
        while let Some(p) = indexer.poll() {
            points.push(p);
        }
        (points, packets)
    }

    #[test]
    fn every_idr_of_a_closed_gop_stream_is_a_splice_point_that_decodes() {
        let capture = include_bytes!("../../testdata/h264_aac_closed_gop.ts");
        let (points, packets) = splice_points(capture);
        let pts: Vec<u64> = points.iter().map(|p| p.pts.unwrap().ticks()).collect();
        assert_eq!(pts, vec![133_200, 223_200, 313_200, 403_200]);
        for point in &points {
            // What a consumer joining here gets: PAT, PMT, then the stream.
            let (mut pat_cc, mut pmt_cc) = (Cc::new(0), Cc::new(0));
            let mut joined: Vec<u8> = point.psi_packets(&mut pat_cc, &mut pmt_cc).concat();
            for p in &packets[point.index as usize..] {
                joined.extend_from_slice(p);
            }
            let mut prober = Prober::new();
            prober.push(&joined);
            let report = prober.finish().unwrap();
            let video = report.video.unwrap();
            assert_eq!(video.frames_before_first_idr, 0);
            assert_eq!(video.idr_pts.first(), point.pts.map(|p| p.ticks()).as_ref());
            assert_eq!(video.pts_backwards, 0);
            let video_cc = report
                .pids
                .iter()
                .find(|p| p.pid == 0x100)
                .unwrap()
                .cc_errors;
            assert_eq!(video_cc, 0);
        }
    }

    #[test]
    fn cra_and_open_gop_and_intra_refresh_are_not_splice_points() {
        for capture in [
            &include_bytes!("../../testdata/hevc_open_gop_cra.ts")[..],
            &include_bytes!("../../testdata/h264_open_gop.ts")[..],
            &include_bytes!("../../testdata/h264_intra_refresh.ts")[..],
        ] {
            let (points, _) = splice_points(capture);
            assert_eq!(points.len(), 1, "only the first IDR");
        }
    }

    #[test]
    fn selects_the_requested_program() {
        let capture = include_bytes!("../../testdata/two_programs.ts");
        let mut stream = StreamDemux::new();
        let mut indexer = GopIndexer::new(ProgramSelector::Number(2));
        stream.push(capture, &mut indexer);
        stream.finish(&mut indexer);
        assert_eq!(indexer.video_pid(), Some(Pid::new(0x102)));
        let first = indexer.poll().unwrap();
        assert_eq!(
            (first.pmt_pid, first.video_pid),
            (Pid::new(0x1001), Pid::new(0x102))
        );
    }
}
