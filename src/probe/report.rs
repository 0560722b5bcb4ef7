//! The probe report: JSON (stable keys, see the README) and a compact human
//! summary.

use std::fmt;

use serde::Serialize;

/// Everything `switchyard probe` reports; field names are the JSON keys.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub packets: u64,
    pub bytes: u64,
    pub duration_s: f64,
    pub bitrate_bps: f64,
    pub sync_losses: u64,
    pub cc_errors: u64,
    pub errors: ErrorCounts,
    /// PAT/PMT changes after the first version.
    pub psi_changes: u64,
    pub programs: Vec<ProgramReport>,
    pub pids: Vec<PidReport>,
    /// The first video stream (of the first program), or null.
    pub video: Option<VideoReport>,
    /// Every video stream, in PMT order.
    pub video_streams: Vec<VideoReport>,
    pub audio: Vec<AudioReport>,
    pub pcr: Option<PcrReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorCounts {
    pub bytes_skipped: u64,
    pub truncated_tail: bool,
    pub malformed_packets: u64,
    pub transport_errors: u64,
    pub scrambled_packets: u64,
    pub psi_errors: u64,
    pub pes_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub program_number: u16,
    pub pmt_pid: u16,
    pub pcr_pid: u16,
    pub streams: Vec<StreamReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub pid: u16,
    pub stream_type: u8,
    pub codec: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PidReport {
    pub pid: u16,
    pub packets: u64,
    pub cc_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VideoReport {
    pub pid: u16,
    pub codec: String,
    pub frames: u64,
    pub idr_pts: Vec<u64>,
    pub gop_frames: Vec<u64>,
    pub frames_before_first_idr: u64,
    /// HEVC CRA/BLA pictures: random access, but not closed splice points.
    pub cra_pts: Vec<u64>,
    /// H.264 access units carrying a recovery point SEI (intra refresh,
    /// open GOP): not splice points either.
    pub recovery_points: u64,
    pub idrs_without_parameter_sets: u64,
    pub pts_backwards: u64,
    pub duplicate_pts: u64,
    pub dts_backwards: u64,
    pub max_pts_gap_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AudioReport {
    pub pid: u16,
    pub codec: String,
    pub frames: u64,
    pub pts_backwards: u64,
    pub duplicate_pts: u64,
    pub max_pts_gap_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PcrReport {
    pub pid: u16,
    pub count: u64,
    pub max_interval_ms: f64,
    pub discontinuities: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} packets, {} bytes, {:.2} s, {:.0} kbit/s; sync losses {}, CC errors {}",
            self.packets,
            self.bytes,
            self.duration_s,
            self.bitrate_bps / 1000.0,
            self.sync_losses,
            self.cc_errors
        )?;
        let e = &self.errors;
        if e.bytes_skipped > 0
            || e.malformed_packets > 0
            || e.transport_errors > 0
            || e.psi_errors > 0
            || e.pes_errors > 0
        {
            writeln!(
                f,
                "damage: {} bytes skipped{}, {} malformed packets, {} transport errors, {} PSI errors, {} PES errors",
                e.bytes_skipped,
                if e.truncated_tail {
                    " (truncated tail)"
                } else {
                    ""
                },
                e.malformed_packets,
                e.transport_errors,
                e.psi_errors,
                e.pes_errors
            )?;
        }
        for p in &self.programs {
            writeln!(
                f,
                "program {} (PMT {:#06x}, PCR {:#06x})",
                p.program_number, p.pmt_pid, p.pcr_pid
            )?;
            for s in &p.streams {
                write!(
                    f,
                    "  {:#06x} {:<12} (type {:#04x})",
                    s.pid, s.codec, s.stream_type
                )?;
                if let Some(v) = self.video_streams.iter().find(|v| v.pid == s.pid) {
                    write!(
                        f,
                        " {} frames, {} IDR{}, GOPs {}, max PTS gap {:.1} ms",
                        v.frames,
                        v.idr_pts.len(),
                        if v.idr_pts.len() == 1 { "" } else { "s" },
                        summarize(&v.gop_frames),
                        v.max_pts_gap_ms
                    )?;
                    if !v.cra_pts.is_empty() {
                        write!(f, ", {} CRA/BLA (not splice points)", v.cra_pts.len())?;
                    }
                    if v.recovery_points > 0 {
                        write!(
                            f,
                            ", {} recovery points (not splice points)",
                            v.recovery_points
                        )?;
                    }
                    write_order(f, v.pts_backwards, v.duplicate_pts)?;
                } else if let Some(a) = self.audio.iter().find(|a| a.pid == s.pid) {
                    write!(
                        f,
                        " {} frames, max PTS gap {:.1} ms",
                        a.frames, a.max_pts_gap_ms
                    )?;
                    write_order(f, a.pts_backwards, a.duplicate_pts)?;
                }
                writeln!(f)?;
            }
        }
        if let Some(p) = &self.pcr {
            writeln!(
                f,
                "PCR {:#06x}: {} values, max interval {:.1} ms, {} discontinuities",
                p.pid, p.count, p.max_interval_ms, p.discontinuities
            )?;
        }
        let errors: Vec<String> = self
            .pids
            .iter()
            .filter(|p| p.cc_errors > 0)
            .map(|p| format!("{:#06x}: {}", p.pid, p.cc_errors))
            .collect();
        if !errors.is_empty() {
            writeln!(f, "CC errors by PID: {}", errors.join(", "))?;
        }
        Ok(())
    }
}

fn write_order(f: &mut fmt::Formatter<'_>, backwards: u64, duplicates: u64) -> fmt::Result {
    if backwards > 0 || duplicates > 0 {
        write!(f, ", PTS backwards {backwards}, duplicate PTS {duplicates}")?;
    }
    Ok(())
}

/// `25×4` for repeated values, else the list.
fn summarize(gops: &[u64]) -> String {
    match gops {
        [] => "none".to_owned(),
        [first, rest @ ..] if rest.iter().all(|g| g == first) => format!("{first}×{}", gops.len()),
        _ => gops
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("/"),
    }
}
