//! Annex-B access unit inspection: start codes, NAL unit types, recovery point SEI and (H.264)
//! slice type. Written from the specs, independent of switchyard's `ts` module.
//!
//! - H.264 (ITU-T H.264 §7.3.1): 1-byte NAL header, `nal_unit_type = b & 0x1f`; VCL types 1–5,
//!   5 = IDR slice, 6 = SEI.
//! - HEVC (ITU-T H.265 §7.3.1.2): 2-byte NAL header, `nal_unit_type = (b >> 1) & 0x3f`; VCL types
//!   0–31; 16–18 BLA, 19 IDR_W_RADL, 20 IDR_N_LP, 21 CRA; 39 = prefix SEI.

use anyhow::{Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    H264,
    Hevc,
}

impl Codec {
    pub fn from_ffprobe(name: &str) -> Result<Self> {
        match name {
            "h264" => Ok(Self::H264),
            "hevc" => Ok(Self::Hevc),
            other => bail!("video codec {other:?} is not supported by the oracle (h264, hevc)"),
        }
    }
}

/// What one access unit (one ffprobe video packet) is, judged by its NAL units.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// NAL unit types in bitstream order.
    pub nal_types: Vec<u8>,
    /// Type of the first VCL NAL unit, if there is one.
    pub first_vcl: Option<u8>,
    /// A recovery point SEI (payloadType 6) is present.
    pub recovery_point: bool,
    /// H.264 only: `slice_type` of the first slice (0..=9), when it could be read.
    pub first_slice_type: Option<u32>,
}

impl AccessUnit {
    pub fn parse(codec: Codec, data: &[u8]) -> Self {
        let mut au = AccessUnit::default();
        for nal in nal_units(data) {
            let Some(nal_type) = nal_type(codec, nal) else {
                continue;
            };
            au.nal_types.push(nal_type);
            let vcl = match codec {
                Codec::H264 => (1..=5).contains(&nal_type),
                Codec::Hevc => nal_type <= 31,
            };
            if vcl && au.first_vcl.is_none() {
                au.first_vcl = Some(nal_type);
                if codec == Codec::H264 {
                    au.first_slice_type = h264_slice_type(nal);
                }
            }
            let is_sei = match codec {
                Codec::H264 => nal_type == 6,
                Codec::Hevc => nal_type == 39,
            };
            if is_sei && sei_payload_types(codec, nal).contains(&6) {
                au.recovery_point = true;
            }
        }
        au
    }

    /// Closed random access point: H.264 IDR (5), HEVC IDR_W_RADL (19) / IDR_N_LP (20).
    pub fn is_idr(&self, codec: Codec) -> bool {
        match codec {
            Codec::H264 => self.first_vcl == Some(5),
            Codec::Hevc => matches!(self.first_vcl, Some(19 | 20)),
        }
    }

    /// HEVC clean random access (21): random access, but RASL pictures may follow.
    pub fn is_cra(&self, codec: Codec) -> bool {
        codec == Codec::Hevc && self.first_vcl == Some(21)
    }

    /// HEVC broken link access (16–18).
    pub fn is_bla(&self, codec: Codec) -> bool {
        codec == Codec::Hevc && matches!(self.first_vcl, Some(16..=18))
    }

    /// H.264 I (or SI) picture carried in non-IDR slice NAL units (type 1).
    pub fn is_non_idr_i(&self, codec: Codec) -> bool {
        codec == Codec::H264
            && self.first_vcl == Some(1)
            && matches!(self.first_slice_type.map(|t| t % 5), Some(2 | 4))
    }
}

/// NAL unit payloads (header included, start code and trailing zero bytes excluded).
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &(_, begin)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&(sc, _)| sc);
        let mut nal = &data[begin..end];
        // A 4-byte start code's leading zero and trailing_zero_8bits belong to no NAL unit.
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        if !nal.is_empty() {
            nals.push(nal);
        }
    }
    nals
}

fn nal_type(codec: Codec, nal: &[u8]) -> Option<u8> {
    let first = *nal.first()?;
    Some(match codec {
        Codec::H264 => first & 0x1f,
        Codec::Hevc => (first >> 1) & 0x3f,
    })
}

fn header_len(codec: Codec) -> usize {
    match codec {
        Codec::H264 => 1,
        Codec::Hevc => 2,
    }
}

/// NAL payload with emulation prevention bytes (00 00 03) removed (H.264 §7.4.1).
fn rbsp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// payloadType of every SEI message in an SEI NAL unit (H.264 §7.3.2.3, H.265 §7.3.5).
fn sei_payload_types(codec: Codec, nal: &[u8]) -> Vec<u32> {
    let body = rbsp(nal.get(header_len(codec)..).unwrap_or_default());
    let mut types = Vec::new();
    let mut pos = 0;
    // more_rbsp_data: stop at the rbsp_stop_one_bit byte (0x80) or the end.
    while pos < body.len() && !(pos + 1 == body.len() && body[pos] == 0x80) {
        let mut read_ff_coded = || -> Option<u32> {
            let mut value = 0u32;
            loop {
                let b = *body.get(pos)?;
                pos += 1;
                value += u32::from(b);
                if b != 0xff {
                    return Some(value);
                }
            }
        };
        let (Some(payload_type), Some(payload_size)) = (read_ff_coded(), read_ff_coded()) else {
            break;
        };
        types.push(payload_type);
        pos += payload_size as usize;
    }
    types
}

/// `slice_type` of an H.264 slice NAL: `first_mb_in_slice ue(v)`, `slice_type ue(v)` (§7.3.3).
fn h264_slice_type(nal: &[u8]) -> Option<u32> {
    let body = rbsp(nal.get(1..(1 + 16).min(nal.len()))?);
    let mut bits = BitReader {
        data: &body,
        pos: 0,
    };
    let _first_mb_in_slice = bits.ue()?;
    bits.ue()
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    /// Exp-Golomb ue(v) (H.264 §9.1).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut suffix = 0u32;
        for _ in 0..zeros {
            suffix = (suffix << 1) | self.bit()?;
        }
        Some(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x41, 0x9a,
        ];
        let nals = nal_units(&data);
        assert_eq!(
            nals,
            vec![&[0x09, 0xf0][..], &[0x65, 0x88][..], &[0x41, 0x9a][..]]
        );
    }

    #[test]
    fn h264_idr_is_first_vcl_type_5() {
        // AUD, SPS, IDR slice (first_mb 0 = '1', slice_type 7 = '0001000').
        let data = [
            0,
            0,
            0,
            1,
            0x09,
            0xf0,
            0,
            0,
            1,
            0x67,
            0x64,
            0,
            0,
            1,
            0x65,
            0b1000_1000,
            0,
        ];
        let au = AccessUnit::parse(Codec::H264, &data);
        assert_eq!(au.nal_types, vec![9, 7, 5]);
        assert!(au.is_idr(Codec::H264));
        assert_eq!(au.first_slice_type, Some(7));
    }

    #[test]
    fn h264_non_idr_i_slice_with_recovery_point() {
        // SEI: payloadType 6, size 1, payload 0x80, then rbsp trailing bits.
        let sei = [0x06, 0x06, 0x01, 0x84, 0x80];
        // Non-IDR slice: first_mb 0 ('1'), slice_type 2 ('011') -> 1011_0000.
        let slice = [0x41, 0b1011_0000];
        let mut data = vec![0, 0, 1];
        data.extend_from_slice(&sei);
        data.extend_from_slice(&[0, 0, 1]);
        data.extend_from_slice(&slice);
        let au = AccessUnit::parse(Codec::H264, &data);
        assert!(au.recovery_point);
        assert!(!au.is_idr(Codec::H264));
        assert!(au.is_non_idr_i(Codec::H264));
    }

    #[test]
    fn hevc_types_use_six_bits_after_forbidden_bit() {
        // 0x2a 0x01 = CRA (21); 0x26 0x01 = IDR_W_RADL (19); 0x28 0x01 = IDR_N_LP (20).
        let cra = AccessUnit::parse(Codec::Hevc, &[0, 0, 1, 0x2a, 0x01, 0xaf]);
        assert!(cra.is_cra(Codec::Hevc) && !cra.is_idr(Codec::Hevc));
        let idr = AccessUnit::parse(Codec::Hevc, &[0, 0, 1, 0x26, 0x01, 0xaf]);
        assert!(idr.is_idr(Codec::Hevc));
        let idr_n_lp = AccessUnit::parse(Codec::Hevc, &[0, 0, 1, 0x28, 0x01, 0xaf]);
        assert!(idr_n_lp.is_idr(Codec::Hevc));
        let bla = AccessUnit::parse(Codec::Hevc, &[0, 0, 1, 0x20, 0x01, 0xaf]);
        assert!(bla.is_bla(Codec::Hevc) && !bla.is_idr(Codec::Hevc));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(rbsp(&[0, 0, 3, 1, 0, 0, 3, 0]), vec![0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn ue_decodes_exp_golomb() {
        // 1 | 010 | 011 | 00100 -> 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut bits = BitReader {
            data: &data,
            pos: 0,
        };
        assert_eq!(
            [bits.ue(), bits.ue(), bits.ue(), bits.ue()],
            [Some(0), Some(1), Some(2), Some(3)]
        );
    }
}
