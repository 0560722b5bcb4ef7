//! H.264 / HEVC NAL unit classification for splice points.
//!
//! A video PES packet carries one access unit in Annex B byte-stream format
//! (ITU-T H.264 Annex B, H.265 Annex B): NAL units separated by start codes
//! `00 00 01` (optionally with a leading zero byte). The kind of the access
//! unit is decided by its first VCL NAL unit:
//!
//! - H.264 (§7.4.1.2, Table 7-1): type 5 is an IDR picture; types 1–4 are
//!   other slices (an open-GOP I picture or an intra-refresh recovery point
//!   is type 1 — ffprobe flags those as keyframes, but a decoder cannot start
//!   cleanly on them). Parameter sets: SPS 7, PPS 8.
//! - HEVC (§7.4.2.2, Table 7-1): IRAP pictures are types 16–23; IDR_W_RADL
//!   (19) and IDR_N_LP (20) are closed and safe; BLA (16–18) and CRA (21) are
//!   random access points whose leading pictures may reference earlier ones,
//!   so they are not closed splice points. Parameter sets: VPS 32, SPS 33,
//!   PPS 34.
//!
//! Only the bytes up to the first VCL NAL header of each access unit are
//! scanned; the rest of the picture is skipped, which is what makes scanning
//! every access unit cheap. Start codes split across TS packets are found by
//! carrying the last bytes of each chunk.

/// The video codecs whose NAL units are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
}

/// What kind of picture an access unit starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PictureKind {
    /// H.264 IDR, HEVC IDR_W_RADL / IDR_N_LP: a closed splice point.
    Idr,
    /// HEVC CRA: random access, but leading pictures may be undecodable.
    Cra,
    /// HEVC BLA_W_LP / BLA_W_RADL / BLA_N_LP.
    Bla,
    /// Any other picture (P, B, non-IDR I, recovery point).
    NonIrap,
    /// No VCL NAL unit found in the access unit.
    NoPicture,
}

/// What the scanner learnt about one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessUnitInfo {
    pub picture: PictureKind,
    /// Whether all parameter sets (H.264 SPS+PPS; HEVC VPS+SPS+PPS) were
    /// seen in this access unit before its first slice.
    pub parameter_sets_in_band: bool,
    /// Whether a recovery point SEI (H.264 SEI payload 6) was present; set
    /// only for H.264 and only as far as the first SEI message is read.
    pub recovery_point: bool,
}

/// Scans the NAL units of access units fed in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct NalScanner {
    codec: VideoCodec,
    /// Last two bytes of the previous piece (for start codes split across
    /// pieces); `None` for bytes not yet seen.
    tail: [Option<u8>; 2],
    /// A start code ended exactly at the end of the previous piece; the NAL
    /// header byte is the first byte of the next one.
    header_next: bool,
    /// Parameter sets seen in the current access unit (bit 0 VPS, 1 SPS, 2 PPS).
    parameter_sets: u8,
    recovery_point: bool,
    /// Expecting the first byte after an SEI NAL header (H.264: payload type).
    sei_payload_next: bool,
    decided: Option<AccessUnitInfo>,
}

const VPS: u8 = 1;
const SPS: u8 = 2;
const PPS: u8 = 4;

impl NalScanner {
    pub fn new(codec: VideoCodec) -> NalScanner {
        NalScanner {
            codec,
            tail: [None; 2],
            header_next: false,
            parameter_sets: 0,
            recovery_point: false,
            sei_payload_next: false,
            decided: None,
        }
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Starts a new access unit (at the start of a PES packet's payload).
    pub fn start(&mut self) {
        *self = NalScanner::new(self.codec);
    }

    /// Whether the current access unit's kind is known; further bytes of it
    /// need not be pushed.
    pub fn is_decided(&self) -> bool {
        self.decided.is_some()
    }

    /// Feeds the next piece of the access unit. Returns the access unit's
    /// kind once, when the first VCL NAL header is seen in this piece.
    pub fn push(&mut self, bytes: &[u8]) -> Option<AccessUnitInfo> {
        if self.decided.is_some() || bytes.is_empty() {
            return None;
        }
        if self.sei_payload_next {
            self.sei_payload_next = false;
            if let Some(&payload_type) = bytes.first() {
                self.note_sei(payload_type);
            }
        }
        if self.header_next {
            self.header_next = false;
            if let Some(info) = bytes
                .first()
                .and_then(|&h| self.nal(h, bytes.get(1).copied()))
            {
                return Some(info);
            }
        }
        // Start codes that straddle the previous piece.
        let b0 = bytes.first().copied();
        let b1 = bytes.get(1).copied();
        let straddle = match (self.tail, b0, b1) {
            // .. 00 00 | 01 h
            ([Some(0), Some(0)], Some(1), h) => Some((h, 2)),
            // .. 00 | 00 01 h
            ([_, Some(0)], Some(0), Some(1)) => Some((bytes.get(2).copied(), 3)),
            _ => None,
        };
        if let Some((header, after)) = straddle {
            match header {
                Some(h) => {
                    if let Some(info) = self.nal(h, bytes.get(after).copied()) {
                        return Some(info);
                    }
                }
                None => self.header_next = true,
            }
        }
        // Start codes ending at `one` (`00 00 01` at `one - 2..=one`), in
        // order. A byte above 1 rules out a start code ending there or at
        // either of the next two bytes, so most bytes are stepped over three
        // at a time (the usual Annex B scan). The first slice is usually a
        // few dozen bytes in, where this beats `memchr`, whose setup costs
        // more than the scan.
        let mut one = 2;
        while let Some(&b) = bytes.get(one) {
            if b == 0 {
                one += 1;
                continue;
            }
            if b == 1 && bytes.get(one - 2) == Some(&0) && bytes.get(one - 1) == Some(&0) {
                match bytes.get(one + 1) {
                    Some(&h) => {
                        if let Some(info) = self.nal(h, bytes.get(one + 2).copied()) {
                            return Some(info);
                        }
                    }
                    None => self.header_next = true,
                }
            }
            one += 3;
        }
        self.tail = match bytes {
            [.., a, b] => [Some(*a), Some(*b)],
            [b] => [self.tail[1], Some(*b)],
            [] => self.tail,
        };
        None
    }

    /// Ends the access unit; returns its kind if it was not decided by
    /// [`NalScanner::push`] (no VCL NAL unit seen).
    pub fn finish(&mut self) -> Option<AccessUnitInfo> {
        if self.decided.is_some() {
            return None;
        }
        let info = AccessUnitInfo {
            picture: PictureKind::NoPicture,
            parameter_sets_in_band: self.all_parameter_sets(),
            recovery_point: self.recovery_point,
        };
        self.decided = Some(info);
        Some(info)
    }

    fn all_parameter_sets(&self) -> bool {
        match self.codec {
            VideoCodec::H264 => self.parameter_sets & (SPS | PPS) == SPS | PPS,
            VideoCodec::Hevc => self.parameter_sets == VPS | SPS | PPS,
        }
    }

    fn note_sei(&mut self, payload_type: u8) {
        // H.264 D.1: recovery_point is SEI payload type 6.
        if self.codec == VideoCodec::H264 && payload_type == 6 {
            self.recovery_point = true;
        }
    }

    /// Handles one NAL header byte (and the byte after it, if known);
    /// returns the decision when it is a VCL NAL.
    fn nal(&mut self, header: u8, next: Option<u8>) -> Option<AccessUnitInfo> {
        let picture = match self.codec {
            VideoCodec::H264 => match header & 0x1F {
                5 => Some(PictureKind::Idr),
                1..=4 => Some(PictureKind::NonIrap),
                6 => {
                    match next {
                        Some(t) => self.note_sei(t),
                        None => self.sei_payload_next = true,
                    }
                    None
                }
                7 => {
                    self.parameter_sets |= SPS;
                    None
                }
                8 => {
                    self.parameter_sets |= PPS;
                    None
                }
                _ => None,
            },
            VideoCodec::Hevc => match (header >> 1) & 0x3F {
                19 | 20 => Some(PictureKind::Idr),
                21 => Some(PictureKind::Cra),
                16..=18 => Some(PictureKind::Bla),
                // 22, 23 are reserved IRAP types: not closed, not usable.
                0..=15 | 22..=31 => Some(PictureKind::NonIrap),
                32 => {
                    self.parameter_sets |= VPS;
                    None
                }
                33 => {
                    self.parameter_sets |= SPS;
                    None
                }
                34 => {
                    self.parameter_sets |= PPS;
                    None
                }
                _ => None,
            },
        }?;
        let info = AccessUnitInfo {
            picture,
            parameter_sets_in_band: self.all_parameter_sets(),
            recovery_point: self.recovery_point,
        };
        self.decided = Some(info);
        Some(info)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, n) in nals.iter().enumerate() {
            if i == 0 {
                out.push(0);
            }
            out.extend_from_slice(&[0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    fn classify(codec: VideoCodec, data: &[u8], split: usize) -> AccessUnitInfo {
        let mut s = NalScanner::new(codec);
        for piece in data.chunks(split.max(1)) {
            if let Some(info) = s.push(piece) {
                return info;
            }
        }
        s.finish().unwrap()
    }

    const AUD: &[u8] = &[0x09, 0xF0];
    const SPS_264: &[u8] = &[0x67, 0x64, 0x00, 0x1F];
    const PPS_264: &[u8] = &[0x68, 0xEB, 0xE3];
    const IDR_264: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33];
    const SLICE_264: &[u8] = &[0x41, 0x9A, 0x00];
    const SEI_RECOVERY: &[u8] = &[0x06, 0x06, 0x01, 0xC4, 0x80];

    #[test]
    fn h264_idr_with_parameter_sets_at_every_split() {
        let au = annexb(&[AUD, SPS_264, PPS_264, IDR_264]);
        for split in 1..au.len() + 1 {
            let info = classify(VideoCodec::H264, &au, split);
            assert_eq!(info.picture, PictureKind::Idr, "split {split}");
            assert!(info.parameter_sets_in_band, "split {split}");
        }
    }

    #[test]
    fn h264_intra_refresh_recovery_point_is_not_idr() {
        let au = annexb(&[AUD, SEI_RECOVERY, SLICE_264]);
        for split in 1..au.len() + 1 {
            let info = classify(VideoCodec::H264, &au, split);
            assert_eq!(info.picture, PictureKind::NonIrap);
            assert!(info.recovery_point, "split {split}");
            assert!(!info.parameter_sets_in_band);
        }
    }

    #[test]
    fn hevc_types() {
        let vps = [0x40, 0x01, 0x0C];
        let sps = [0x42, 0x01, 0x01];
        let pps = [0x44, 0x01, 0xC1];
        for (nal_type, want) in [
            (19u8, PictureKind::Idr),
            (20, PictureKind::Idr),
            (21, PictureKind::Cra),
            (16, PictureKind::Bla),
            (17, PictureKind::Bla),
            (18, PictureKind::Bla),
            (1, PictureKind::NonIrap),
            (0, PictureKind::NonIrap),
        ] {
            let slice = [nal_type << 1, 0x01, 0xAF];
            let au = annexb(&[&[0x46, 0x01, 0x10], &vps, &sps, &pps, &slice]);
            for split in 1..au.len() + 1 {
                let info = classify(VideoCodec::Hevc, &au, split);
                assert_eq!(info.picture, want, "type {nal_type} split {split}");
                assert!(info.parameter_sets_in_band);
            }
        }
    }

    #[test]
    fn no_vcl_is_no_picture() {
        let au = annexb(&[AUD, SPS_264]);
        assert_eq!(
            classify(VideoCodec::H264, &au, 3).picture,
            PictureKind::NoPicture
        );
    }

    #[test]
    fn zero_bytes_before_a_start_code_are_not_a_false_start() {
        // 00 00 00 01 65 across pieces of one byte each.
        let au = [0u8, 0, 0, 0, 0, 1, 0x65, 0x88];
        assert_eq!(classify(VideoCodec::H264, &au, 1).picture, PictureKind::Idr);
    }

    proptest! {
        #[test]
        fn decision_is_independent_of_split(data in proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..200), split in 1usize..50) {
            let whole = classify(VideoCodec::H264, &data, data.len().max(1));
            let pieces = classify(VideoCodec::H264, &data, split);
            prop_assert_eq!(whole, pieces);
            let whole = classify(VideoCodec::Hevc, &data, data.len().max(1));
            let pieces = classify(VideoCodec::Hevc, &data, split);
            prop_assert_eq!(whole, pieces);
        }
    }
}
