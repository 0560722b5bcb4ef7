//! `switchyard probe`: an MPEG-TS analyser, and the oracle the tests use to
//! judge spliced output.
//!
//! [`Prober`] is sans-IO: push bytes in any chunking, then [`Prober::finish`]
//! returns a [`Report`]. Definitions (also in the README):
//!
//! - `frames`: PES packets (access units) of a stream, in decode order.
//! - `idr_pts`: PTS of every true IDR access unit of the video stream (H.264
//!   NAL 5, HEVC NAL 19/20), in decode order. CRA/BLA pictures, open-GOP I
//!   pictures and intra-refresh recovery points are not IDRs; they are
//!   reported separately (`cra_pts`, `recovery_points`).
//! - `gop_frames`: frames from each IDR up to the next (the last one to the
//!   end of the stream); frames before the first IDR are
//!   `frames_before_first_idr`.
//! - `pts_backwards` / `duplicate_pts` / `max_pts_gap_ms`: presentation order
//!   checks after B-frame reordering, see [`order`].
//! - `duration_s` / `bitrate_bps`: from the PCR of the first program when it
//!   has at least two, otherwise from the widest PTS span.

mod order;
mod report;

pub use order::{PtsOrder, Unwrapper};
pub use report::{
    AudioReport, ErrorCounts, PcrReport, PidReport, ProgramReport, Report, StreamReport,
    VideoReport,
};

use crate::ts::demux::{AccessUnit, DemuxError, DemuxHandler, PesStart, StreamDemux};
use crate::ts::nal::PictureKind;
use crate::ts::psi::{Codec, Pat, Pmt};
use crate::ts::{Pcr, Pid, Timestamp, TsPacket};

/// Reorder depth for video presentation-order checks (see [`order`]).
const VIDEO_REORDER_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "not an MPEG transport stream: no run of 0x47 sync bytes 188 bytes apart in {bytes} bytes"
    )]
    NotTransportStream { bytes: u64 },
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Prober {
    stream: StreamDemux,
    facts: Facts,
    bytes: u64,
}

/// What the probe learns from demux callbacks.
#[derive(Debug, Default)]
struct Facts {
    /// Elementary streams in order of first appearance in a PMT.
    streams: Vec<EsFacts>,
    pcr: Vec<PcrFacts>,
    /// Index of the last packet seen; bytes before a PCR packet are
    /// `index * 188` since the probe only counts whole packets.
    packets_seen: u64,
}

#[derive(Debug)]
struct EsFacts {
    pid: Pid,
    codec: Codec,
    pes: u64,
    order: PtsOrder,
    dts_backwards: u64,
    last_dts: Option<i64>,
    dts_unwrap: Unwrapper,
    idr_pts: Vec<u64>,
    cra_pts: Vec<u64>,
    recovery_points: u64,
    /// Frames since the last IDR (None before the first).
    gop: Option<u64>,
    gop_frames: Vec<u64>,
    frames_before_first_idr: u64,
    idrs_without_parameter_sets: u64,
}

#[derive(Debug)]
struct PcrFacts {
    pid: Pid,
    count: u64,
    first: Option<(u64, Pcr)>,
    last: Option<(u64, Pcr)>,
    /// Sum of forward PCR steps in 27 MHz ticks (continuous span).
    span: i64,
    max_interval: i64,
    discontinuities: u64,
}

impl Prober {
    pub fn new() -> Prober {
        Prober::default()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.stream.push(chunk, &mut self.facts);
    }

    pub fn finish(mut self) -> Result<Report, ProbeError> {
        self.stream.finish(&mut self.facts);
        let resync = self.stream.resync_stats();
        let demux = &self.stream.demux;
        let stats = demux.stats();
        if stats.packets == 0 {
            return Err(ProbeError::NotTransportStream { bytes: self.bytes });
        }
        for es in &mut self.facts.streams {
            es.order.finish();
            if let Some(g) = es.gop.take() {
                es.gop_frames.push(g);
            }
        }
        let programs: Vec<ProgramReport> = demux
            .pmts()
            .map(|(pmt_pid, pmt)| ProgramReport {
                program_number: pmt.program_number,
                pmt_pid: pmt_pid.value(),
                pcr_pid: pmt.pcr_pid.value(),
                streams: pmt
                    .streams
                    .iter()
                    .map(|s| StreamReport {
                        pid: s.pid.value(),
                        stream_type: s.stream_type,
                        codec: s.codec().name().to_owned(),
                    })
                    .collect(),
            })
            .collect();
        let pids = demux
            .pids()
            .map(|(pid, c)| PidReport {
                pid: pid.value(),
                packets: c.packets,
                cc_errors: c.cc_errors,
            })
            .collect();
        let videos: Vec<VideoReport> = self
            .facts
            .streams
            .iter()
            .filter(|s| s.codec.is_video())
            .map(EsFacts::video_report)
            .collect();
        let audio = self
            .facts
            .streams
            .iter()
            .filter(|s| s.codec.is_audio())
            .map(|s| AudioReport {
                pid: s.pid.value(),
                codec: s.codec.name().to_owned(),
                frames: s.pes,
                pts_backwards: s.order.backwards,
                duplicate_pts: s.order.duplicates,
                max_pts_gap_ms: Timestamp::ticks_to_ms(s.order.max_gap),
            })
            .collect();
        // The PCR of the first program, else the first PCR PID seen.
        let first_pcr_pid = programs.first().map(|p| Pid::new(p.pcr_pid));
        let pcr = self
            .facts
            .pcr
            .iter()
            .find(|p| Some(p.pid) == first_pcr_pid)
            .or(self.facts.pcr.first());
        let total_bytes = resync.packets * crate::ts::PACKET_SIZE as u64;
        let (duration_s, bitrate_bps) = match pcr {
            Some(p) if p.span > 0 && p.count >= 2 => {
                let (first_index, _) = p.first.unwrap_or_default();
                let (last_index, _) = p.last.unwrap_or_default();
                let bits = (last_index - first_index) as f64 * 188.0 * 8.0;
                let bitrate = bits / (p.span as f64 / Pcr::HZ as f64);
                (total_bytes as f64 * 8.0 / bitrate, bitrate)
            }
            _ => {
                let span = self
                    .facts
                    .streams
                    .iter()
                    .filter_map(|s| Some(s.order.last? - s.order.first?))
                    .max()
                    .unwrap_or(0);
                let duration = span as f64 / Timestamp::HZ as f64;
                let bitrate = if duration > 0.0 {
                    total_bytes as f64 * 8.0 / duration
                } else {
                    0.0
                };
                (duration, bitrate)
            }
        };
        Ok(Report {
            packets: resync.packets,
            bytes: self.bytes,
            duration_s,
            bitrate_bps: bitrate_bps.round(),
            sync_losses: resync.sync_losses,
            cc_errors: stats.cc_errors,
            errors: ErrorCounts {
                bytes_skipped: resync.bytes_skipped,
                truncated_tail: resync.truncated_tail,
                malformed_packets: stats.malformed_packets,
                transport_errors: stats.transport_errors,
                scrambled_packets: stats.scrambled_packets,
                psi_errors: stats.psi_errors,
                pes_errors: stats.pes_errors,
            },
            psi_changes: stats.psi_changes,
            programs,
            pids,
            video: videos.first().cloned(),
            video_streams: videos,
            audio,
            pcr: pcr.map(|p| PcrReport {
                pid: p.pid.value(),
                count: p.count,
                max_interval_ms: p.max_interval as f64 / 27_000.0,
                discontinuities: p.discontinuities,
            }),
        })
    }
}

impl Facts {
    fn stream(&mut self, pid: Pid) -> Option<&mut EsFacts> {
        self.streams.iter_mut().find(|s| s.pid == pid)
    }
}

impl EsFacts {
    fn new(pid: Pid, codec: Codec) -> EsFacts {
        let depth = if codec.is_video() {
            VIDEO_REORDER_DEPTH
        } else {
            0
        };
        EsFacts {
            pid,
            codec,
            pes: 0,
            order: PtsOrder::new(depth),
            dts_backwards: 0,
            last_dts: None,
            dts_unwrap: Unwrapper::default(),
            idr_pts: Vec::new(),
            cra_pts: Vec::new(),
            recovery_points: 0,
            gop: None,
            gop_frames: Vec::new(),
            frames_before_first_idr: 0,
            idrs_without_parameter_sets: 0,
        }
    }

    fn video_report(&self) -> VideoReport {
        VideoReport {
            pid: self.pid.value(),
            codec: self.codec.name().to_owned(),
            frames: self.pes,
            idr_pts: self.idr_pts.clone(),
            gop_frames: self.gop_frames.clone(),
            frames_before_first_idr: self.frames_before_first_idr,
            cra_pts: self.cra_pts.clone(),
            recovery_points: self.recovery_points,
            idrs_without_parameter_sets: self.idrs_without_parameter_sets,
            pts_backwards: self.order.backwards,
            duplicate_pts: self.order.duplicates,
            dts_backwards: self.dts_backwards,
            max_pts_gap_ms: Timestamp::ticks_to_ms(self.order.max_gap),
        }
    }
}

impl DemuxHandler for Facts {
    fn on_packet(&mut self, index: u64, _packet: &TsPacket<'_>) {
        self.packets_seen = index;
    }

    fn on_pat(&mut self, _index: u64, _pat: &Pat, _section: &[u8]) {}

    fn on_pmt(&mut self, _index: u64, _pid: Pid, pmt: &Pmt, _section: &[u8]) {
        for s in &pmt.streams {
            let codec = s.codec();
            match self.stream(s.pid) {
                Some(existing) if existing.codec == codec => {}
                Some(existing) => *existing = EsFacts::new(s.pid, codec),
                None => self.streams.push(EsFacts::new(s.pid, codec)),
            }
        }
    }

    fn on_pes(&mut self, pes: &PesStart) {
        let Some(es) = self.stream(pes.pid) else {
            return;
        };
        es.pes += 1;
        if let Some(pts) = pes.header.pts {
            es.order.push(pts);
        }
        if let Some(dts) = pes.header.decode_time() {
            let dts = es.dts_unwrap.unwrap(dts);
            if es.last_dts.is_some_and(|last| dts <= last) {
                es.dts_backwards += 1;
            }
            es.last_dts = Some(dts);
        }
        match &mut es.gop {
            Some(g) => *g += 1,
            None => es.frames_before_first_idr += 1,
        }
    }

    fn on_access_unit(&mut self, au: &AccessUnit) {
        let Some(es) = self.stream(au.pid) else {
            return;
        };
        let pts = au.pts.map(Timestamp::ticks);
        if au.info.recovery_point {
            es.recovery_points += 1;
        }
        match au.info.picture {
            PictureKind::Idr => {
                if !au.info.parameter_sets_in_band {
                    es.idrs_without_parameter_sets += 1;
                }
                if let Some(p) = pts {
                    es.idr_pts.push(p);
                }
                // The IDR frame itself was counted by on_pes; it opens the
                // new GOP.
                match es.gop.replace(1) {
                    Some(g) => es.gop_frames.push(g.saturating_sub(1)),
                    None => {
                        es.frames_before_first_idr = es.frames_before_first_idr.saturating_sub(1)
                    }
                }
            }
            PictureKind::Cra | PictureKind::Bla => {
                if let Some(p) = pts {
                    es.cra_pts.push(p);
                }
            }
            PictureKind::NonIrap | PictureKind::NoPicture => {}
        }
    }

    fn on_pcr(&mut self, index: u64, pid: Pid, pcr: Pcr) {
        let facts = match self.pcr.iter().position(|p| p.pid == pid) {
            Some(i) => self.pcr.get_mut(i),
            None => {
                self.pcr.push(PcrFacts {
                    pid,
                    count: 0,
                    first: None,
                    last: None,
                    span: 0,
                    max_interval: 0,
                    discontinuities: 0,
                });
                self.pcr.last_mut()
            }
        };
        let Some(p) = facts else { return };
        p.count += 1;
        if let Some((_, last)) = p.last {
            let step = pcr.delta(last);
            // A step backwards or over 1 s is a clock discontinuity, not an
            // interval (ISO/IEC 13818-1 §2.7.2 asks for ≤ 100 ms).
            if (0..=Pcr::HZ as i64).contains(&step) {
                p.span += step;
                p.max_interval = p.max_interval.max(step);
            } else {
                p.discontinuities += 1;
            }
        } else {
            p.first = Some((index, pcr));
        }
        p.last = Some((index, pcr));
    }

    fn on_error(&mut self, _index: u64, _error: &DemuxError) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_transport_stream() {
        let mut p = Prober::new();
        // 'G' is 0x47: a lone sync-like byte must not make a packet.
        p.push(b"this is certainly not an MPEG transport stream, just some text.");
        assert!(matches!(
            p.finish(),
            Err(ProbeError::NotTransportStream { bytes: 63 })
        ));
    }

    #[test]
    fn text_with_a_stray_sync_byte_over_a_packet_long_is_rejected() {
        let mut text = b"G".to_vec();
        text.extend_from_slice(&[b'x'; 250]);
        let mut p = Prober::new();
        p.push(&text);
        assert!(p.finish().is_err());
    }

    #[test]
    fn empty_input_is_not_a_transport_stream() {
        assert!(Prober::new().finish().is_err());
    }
}
