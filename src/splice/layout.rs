//! The output program layout and how a source's PIDs map onto it.
//!
//! The layout is fixed by the first source that goes active (its PAT entry
//! and PMT at its first splice point) and never changes afterwards, so a
//! receiver sees one program for the life of the output: the same PMT PID,
//! PCR PID, elementary PIDs and stream types, and a PMT whose
//! `version_number` never moves (ISO/IEC 13818-1 §2.4.4.8: a new version
//! tells a decoder to reconfigure, which is exactly what a splice must not
//! cause).

use bytes::Bytes;

use crate::ts::gop::SplicePoint;
use crate::ts::psi::{Codec, Pat, PatEntry, Pmt, PsiError, packetize_section};
use crate::ts::{Cc, PACKET_SIZE, Pid};

/// What an output PID carries, which decides how its packets are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Not part of the output: other programs, null packets, streams a
    /// later source has that the layout does not.
    Drop,
    Pat,
    Pmt,
    Video,
    Audio,
    /// Another elementary stream (subtitles, data, SCTE-35).
    Other,
    /// A PID that carries nothing but PCR (when the PCR PID is none of the
    /// elementary streams, §2.4.4.9).
    PcrOnly,
}

/// Where one source PID goes: its output PID and the slot of that PID's
/// output state in [`Layout::slots`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    pub out: Pid,
    pub kind: Kind,
    pub slot: u8,
}

impl Route {
    const DROP: Route = Route {
        out: Pid::NULL,
        kind: Kind::Drop,
        slot: 0,
    };
}

/// A source's routing table, one entry per PID (a flat table keeps the
/// per-packet lookup to one load).
pub(crate) type Routes = Box<[Route; Pid::COUNT]>;

/// One output PID of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub pid: Pid,
    pub kind: Kind,
    pub codec: Option<Codec>,
    pub stream_type: u8,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub pmt_pid: Pid,
    pub pcr_pid: Pid,
    /// The regenerated PAT (this program only) and the first source's PMT
    /// section, both with CRC.
    pub pat: Bytes,
    pub pmt: Bytes,
    /// Slot 0 is the PAT, 1 the PMT, then the PMT's streams in order, then
    /// the PCR PID when it is no elementary stream.
    pub slots: Vec<Slot>,
}

impl Layout {
    pub const PAT_SLOT: u8 = 0;
    pub const PMT_SLOT: u8 = 1;

    /// The layout of the program a splice point belongs to.
    pub fn from_point(point: &SplicePoint) -> Result<Layout, PsiError> {
        let pat = Pat::parse(&point.pat)?;
        let pmt = Pmt::parse(&point.pmt)?;
        let pat = Pat {
            transport_stream_id: pat.transport_stream_id,
            version: 0,
            entries: vec![PatEntry {
                program_number: point.program_number,
                pid: point.pmt_pid,
            }],
        };
        let mut slots = vec![
            Slot {
                pid: Pid::PAT,
                kind: Kind::Pat,
                codec: None,
                stream_type: 0,
            },
            Slot {
                pid: point.pmt_pid,
                kind: Kind::Pmt,
                codec: None,
                stream_type: 0,
            },
        ];
        let mut video_seen = false;
        for s in &pmt.streams {
            let codec = s.codec();
            // Only the first video stream is the one the splice points are
            // on; a second one cannot be cut cleanly at the same place.
            let kind = if codec.is_video() && !video_seen {
                video_seen = true;
                Kind::Video
            } else if codec.is_audio() {
                Kind::Audio
            } else {
                Kind::Other
            };
            if slots.iter().any(|slot| slot.pid == s.pid) || slots.len() >= usize::from(u8::MAX) {
                continue;
            }
            slots.push(Slot {
                pid: s.pid,
                kind,
                codec: Some(codec),
                stream_type: s.stream_type,
            });
        }
        if !slots.iter().any(|s| s.pid == pmt.pcr_pid) && pmt.pcr_pid != Pid::NULL {
            slots.push(Slot {
                pid: pmt.pcr_pid,
                kind: Kind::PcrOnly,
                codec: None,
                stream_type: 0,
            });
        }
        Ok(Layout {
            pmt_pid: point.pmt_pid,
            pcr_pid: pmt.pcr_pid,
            pat: Bytes::from(pat.to_section()),
            pmt: point.pmt.clone(),
            slots,
        })
    }

    /// Maps a source's program (its PMT PID and PMT) onto the layout:
    /// video to video, audio streams in order by codec, other streams in
    /// order by `stream_type`, the PCR PID to the PCR PID. Returns the
    /// routes and how many of the source's elementary streams have no place
    /// in the layout (they are dropped).
    pub fn routes(&self, pmt_pid: Pid, pmt: &Pmt) -> (Routes, u64) {
        let mut routes: Routes = Box::new([Route::DROP; Pid::COUNT]);
        let set = |routes: &mut Routes, pid: Pid, slot: usize, s: &Slot| {
            if let (Some(r), Ok(slot)) = (routes.get_mut(pid.index()), u8::try_from(slot)) {
                *r = Route {
                    out: s.pid,
                    kind: s.kind,
                    slot,
                };
            }
        };
        let mut taken = vec![false; self.slots.len()];
        for (i, s) in self.slots.iter().enumerate() {
            match s.kind {
                Kind::Pat => set(&mut routes, Pid::PAT, i, s),
                Kind::Pmt => set(&mut routes, pmt_pid, i, s),
                _ => {}
            }
        }
        let mut dropped = 0;
        let mut video_seen = false;
        for stream in &pmt.streams {
            let codec = stream.codec();
            let is_video = codec.is_video() && !video_seen;
            video_seen |= codec.is_video();
            let found = self.slots.iter().enumerate().position(|(i, s)| {
                !taken.get(i).copied().unwrap_or(true)
                    && match s.kind {
                        Kind::Video => is_video,
                        Kind::Audio => codec.is_audio() && s.codec == Some(codec),
                        Kind::Other => {
                            !codec.is_video()
                                && !codec.is_audio()
                                && s.stream_type == stream.stream_type
                        }
                        _ => false,
                    }
            });
            match (found, routes.get(stream.pid.index()).map(|r| r.kind)) {
                (Some(i), Some(Kind::Drop)) => {
                    if let (Some(t), Some(s)) = (taken.get_mut(i), self.slots.get(i)) {
                        *t = true;
                        set(&mut routes, stream.pid, i, s);
                    }
                }
                _ => dropped += 1,
            }
        }
        // A source whose PCR is on a PID of its own: its PCR packets (no
        // payload) go to the output's PCR PID, whatever that carries.
        if routes
            .get(pmt.pcr_pid.index())
            .is_some_and(|r| r.kind == Kind::Drop)
            && pmt.pcr_pid != Pid::NULL
            && let Some(i) = self.slots.iter().position(|s| s.pid == self.pcr_pid)
            && let Some(s) = self.slots.get(i)
        {
            set(
                &mut routes,
                pmt.pcr_pid,
                i,
                &Slot {
                    kind: Kind::PcrOnly,
                    ..*s
                },
            );
        }
        (routes, dropped)
    }

    /// The output PAT or PMT (`slot` [`Layout::PAT_SLOT`] or
    /// [`Layout::PMT_SLOT`]) as packets, stamped from `cc`, which advances.
    pub fn psi_packets(&self, slot: u8, cc: &mut Cc) -> Vec<[u8; PACKET_SIZE]> {
        if slot == Self::PAT_SLOT {
            packetize_section(Pid::PAT, &self.pat, cc)
        } else {
            packetize_section(self.pmt_pid, &self.pmt, cc)
        }
    }
}
