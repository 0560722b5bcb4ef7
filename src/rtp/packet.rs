//! A checked, zero-copy view of one RTP packet (RFC 3550 §5.1).
//!
//! Fixed header, then CSRC list, optional header extension (§5.3.1), payload
//! and optional padding:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                   (CC of them, 4 bytes each)                  |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |      defined by profile       |    length (32-bit words)      |  if X
//! |                 header extension (length words)               |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |                            payload                            |
//! |                               +-------------------------------+
//! |                               | padding ...   | padding count |  if P
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Every length is checked once, in [`RtpPacket::parse`]; the accessors
//! afterwards cannot fail, and the payload is a slice of the datagram's
//! `Bytes`, never a copy.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::seq::SeqNo;

/// Length of the fixed header (no CSRCs, no extension).
pub const FIXED_HEADER_LEN: usize = 12;
/// The static payload type of MPEG-2 transport streams (RFC 3551 §6, Table 5;
/// payload format RFC 2250 §2).
pub const PAYLOAD_TYPE_MP2T: u8 = 33;

/// Why a datagram is not a usable RTP packet. Errors found after the fixed
/// header carry the packet's sequence number, to find it in a capture.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("datagram is {len} bytes, shorter than the {FIXED_HEADER_LEN}-byte RTP fixed header")]
    TooShort { len: usize },
    #[error("RTP version is {got}, expected 2 (first byte {first_byte:#04x})")]
    WrongVersion { got: u8, first_byte: u8 },
    #[error(
        "seq {seq}: {csrc_count} CSRC identifiers need a {needed}-byte header, datagram is {len}"
    )]
    CsrcTruncated {
        seq: SeqNo,
        csrc_count: u8,
        needed: usize,
        len: usize,
    },
    #[error(
        "seq {seq}: header extension at offset {offset} needs {needed} bytes in all, datagram is {len}"
    )]
    ExtensionTruncated {
        seq: SeqNo,
        offset: usize,
        needed: usize,
        len: usize,
    },
    #[error("seq {seq}: padding bit set but the padding count (last byte) is 0")]
    ZeroPadding { seq: SeqNo },
    #[error(
        "seq {seq}: padding count {padding} exceeds the {available} bytes after the {header_len}-byte header"
    )]
    PaddingTooLong {
        seq: SeqNo,
        padding: u8,
        available: usize,
        header_len: usize,
    },
}

/// An RTP packet whose header, CSRC list, extension and padding have been
/// validated. Cheap to clone (the datagram is reference-counted).
#[derive(Clone, PartialEq, Eq)]
pub struct RtpPacket {
    datagram: Bytes,
    seq: SeqNo,
    timestamp: u32,
    ssrc: u32,
    payload_type: u8,
    marker: bool,
    csrc_count: u8,
    /// Profile-defined 16 bits and the extension body's range.
    extension: Option<(u16, usize, usize)>,
    payload_start: usize,
    payload_end: usize,
}

/// An RTP header extension (RFC 3550 §5.3.1): 16 bits defined by the profile
/// and a body of whole 32-bit words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderExtension<'a> {
    pub profile: u16,
    pub data: &'a [u8],
}

impl RtpPacket {
    /// Validates `datagram` as one RTP packet.
    pub fn parse(datagram: Bytes) -> Result<RtpPacket, RtpError> {
        let len = datagram.len();
        let Some(&[b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3]) =
            datagram.first_chunk::<FIXED_HEADER_LEN>()
        else {
            return Err(RtpError::TooShort { len });
        };
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::WrongVersion {
                got: version,
                first_byte: b0,
            });
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0F;
        let seq = SeqNo::new(u16::from_be_bytes([s0, s1]));
        let csrc_end = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if len < csrc_end {
            return Err(RtpError::CsrcTruncated {
                seq,
                csrc_count,
                needed: csrc_end,
                len,
            });
        }
        let (extension, header_len) = if has_extension {
            let truncated = |needed| RtpError::ExtensionTruncated {
                seq,
                offset: csrc_end,
                needed,
                len,
            };
            let Some(&[p0, p1, l0, l1]) = datagram
                .get(csrc_end..)
                .and_then(|rest| rest.first_chunk::<4>())
            else {
                return Err(truncated(csrc_end + 4));
            };
            // The length counts 32-bit words after the 4-byte extension
            // header, so 0 is valid (§5.3.1). At most 4 * 65535 bytes: no
            // overflow in usize.
            let start = csrc_end + 4;
            let end = start + 4 * usize::from(u16::from_be_bytes([l0, l1]));
            if end > len {
                return Err(truncated(end));
            }
            (Some((u16::from_be_bytes([p0, p1]), start, end)), end)
        } else {
            (None, csrc_end)
        };
        let payload_end = if has_padding {
            // The last byte counts the padding bytes, itself included (§5.1).
            let padding = datagram.last().copied().unwrap_or(0);
            if padding == 0 {
                return Err(RtpError::ZeroPadding { seq });
            }
            let available = len - header_len;
            if usize::from(padding) > available {
                return Err(RtpError::PaddingTooLong {
                    seq,
                    padding,
                    available,
                    header_len,
                });
            }
            len - usize::from(padding)
        } else {
            len
        };
        Ok(RtpPacket {
            datagram,
            seq,
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
            payload_type: b1 & 0x7F,
            marker: b1 & 0x80 != 0,
            csrc_count,
            extension,
            payload_start: header_len,
            payload_end,
        })
    }

    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// Media timestamp; 90 kHz for MPEG-TS (RFC 2250 §2), unused by the
    /// receiver (the transport stream carries its own PCR/PTS).
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn marker(&self) -> bool {
        self.marker
    }

    pub fn csrc_count(&self) -> u8 {
        self.csrc_count
    }

    /// The contributing sources, in header order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + '_ {
        let end = FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count);
        self.datagram
            .get(FIXED_HEADER_LEN..end)
            .unwrap_or_default()
            .chunks_exact(4)
            .filter_map(|c| c.first_chunk::<4>())
            .map(|b| u32::from_be_bytes(*b))
    }

    pub fn extension(&self) -> Option<HeaderExtension<'_>> {
        let (profile, start, end) = self.extension?;
        Some(HeaderExtension {
            profile,
            data: self.datagram.get(start..end).unwrap_or_default(),
        })
    }

    /// Padding bytes after the payload (the count byte included); 0 without
    /// the padding bit.
    pub fn padding_len(&self) -> usize {
        self.datagram.len() - self.payload_end
    }

    /// Bytes before the payload: fixed header, CSRCs, extension.
    pub fn header_len(&self) -> usize {
        self.payload_start
    }

    pub fn payload(&self) -> &[u8] {
        self.datagram
            .get(self.payload_start..self.payload_end)
            .unwrap_or_default()
    }

    /// The whole datagram the packet was parsed from.
    pub fn datagram(&self) -> &Bytes {
        &self.datagram
    }

    /// The payload as a slice of the datagram's buffer (no copy, no
    /// reference-count change).
    pub fn into_payload(self) -> Bytes {
        let (start, end) = (self.payload_start, self.payload_end);
        let mut bytes = self.datagram;
        // `parse` established start <= end <= len; checked again so that no
        // path can panic.
        if start <= end && end <= bytes.len() {
            bytes.truncate(end);
            bytes.advance(start);
            bytes
        } else {
            Bytes::new()
        }
    }
}

impl fmt::Debug for RtpPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpPacket")
            .field("seq", &self.seq)
            .field("ssrc", &format_args!("{:#010x}", self.ssrc))
            .field("payload_type", &self.payload_type)
            .field("marker", &self.marker)
            .field("timestamp", &self.timestamp)
            .field("header_len", &self.payload_start)
            .field("payload_len", &self.payload().len())
            .field("padding_len", &self.padding_len())
            .finish()
    }
}

/// Builds RTP datagrams: for tests, benches, the fuzz harness, and RTP
/// outputs. Out-of-range fields are reduced to what the header can carry:
/// the payload type to 7 bits, CSRCs to the first 15, the extension body
/// zero-padded to whole words (at most 65535).
#[derive(Debug, Clone, Default)]
pub struct RtpPacketBuilder {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: SeqNo,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrcs: Vec<u32>,
    /// Profile-defined 16 bits and the extension body.
    pub extension: Option<(u16, Vec<u8>)>,
    /// Padding bytes to append, the count byte included (0: no padding).
    pub padding: u8,
}

impl RtpPacketBuilder {
    /// An MPEG-TS packet (payload type 33) with no CSRCs, extension or
    /// padding.
    pub fn new(seq: SeqNo, ssrc: u32) -> RtpPacketBuilder {
        RtpPacketBuilder {
            payload_type: PAYLOAD_TYPE_MP2T,
            seq,
            ssrc,
            ..RtpPacketBuilder::default()
        }
    }

    pub fn build(&self, payload: &[u8]) -> Bytes {
        let csrcs = self.csrcs.get(..15).unwrap_or(&self.csrcs);
        let extension = self.extension.as_ref().map(|(profile, body)| {
            let words = body.len().div_ceil(4).min(usize::from(u16::MAX));
            (*profile, body.get(..words * 4).unwrap_or(body), words)
        });
        let mut out = BytesMut::with_capacity(
            FIXED_HEADER_LEN
                + 4 * csrcs.len()
                + extension.map_or(0, |(_, _, words)| 4 + 4 * words)
                + payload.len()
                + usize::from(self.padding),
        );
        let mut b0 = 2 << 6 | csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if extension.is_some() {
            b0 |= 0x10;
        }
        out.put_u8(b0);
        out.put_u8(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.put_u16(self.seq.value());
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        for &csrc in csrcs {
            out.put_u32(csrc);
        }
        if let Some((profile, body, words)) = extension {
            out.put_u16(profile);
            out.put_u16(words as u16);
            out.put_slice(body);
            out.put_bytes(0, words * 4 - body.len());
        }
        out.put_slice(payload);
        if self.padding > 0 {
            out.put_bytes(0, usize::from(self.padding) - 1);
            out.put_u8(self.padding);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use proptest::prelude::*;

    use super::*;

    fn ts_payload(n: usize) -> Vec<u8> {
        (0..n * 188)
            .map(|i| if i % 188 == 0 { 0x47 } else { i as u8 })
            .collect()
    }

    #[test]
    fn fixed_header_fields() {
        // V=2, M=1, PT=33, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304.
        let raw = [
            0x80, 0xA1, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0x47, 0x00,
        ];
        let p = RtpPacket::parse(Bytes::copy_from_slice(&raw)).unwrap();
        assert_eq!(p.seq(), SeqNo::new(0x1234));
        assert_eq!(p.timestamp(), 0xDEAD_BEEF);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.payload_type(), 33);
        assert!(p.marker());
        assert_eq!(p.csrc_count(), 0);
        assert_eq!(p.extension(), None);
        assert_eq!(p.header_len(), 12);
        assert_eq!(p.padding_len(), 0);
        assert_eq!(p.payload(), &[0x47, 0x00]);
    }

    #[test]
    fn csrcs_extension_and_padding() {
        let payload = ts_payload(2);
        let b = RtpPacketBuilder {
            csrcs: vec![0xAAAA_0001, 0xBBBB_0002, 0xCCCC_0003],
            extension: Some((0xBEDE, vec![1, 2, 3, 4, 5])),
            padding: 7,
            ..RtpPacketBuilder::new(SeqNo::new(9), 42)
        };
        let datagram = b.build(&payload);
        assert_eq!(datagram.len(), 12 + 12 + 4 + 8 + 376 + 7);
        let p = RtpPacket::parse(datagram.clone()).unwrap();
        assert_eq!(
            p.csrcs().collect::<Vec<_>>(),
            [0xAAAA_0001, 0xBBBB_0002, 0xCCCC_0003]
        );
        let ext = p.extension().unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(p.header_len(), 36);
        assert_eq!(p.padding_len(), 7);
        assert_eq!(p.payload(), &payload[..]);
        // The payload is a view into the datagram's buffer, not a copy.
        let out = p.into_payload();
        assert_eq!(out, payload);
        assert_eq!(out.as_ptr(), datagram[36..].as_ptr());
    }

    #[test]
    fn empty_extension_and_payload_of_padding_only() {
        let b = RtpPacketBuilder {
            extension: Some((1, vec![])),
            padding: 3,
            ..RtpPacketBuilder::new(SeqNo::new(1), 1)
        };
        let p = RtpPacket::parse(b.build(&[])).unwrap();
        assert_eq!(p.extension().unwrap().data, &[] as &[u8]);
        assert_eq!(p.payload(), &[] as &[u8]);
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn errors_carry_context() {
        let parse = |raw: &[u8]| RtpPacket::parse(Bytes::copy_from_slice(raw));
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort { len: 11 }));
        let mut raw = [0u8; 12];
        raw[0] = 0x40;
        assert_eq!(
            parse(&raw),
            Err(RtpError::WrongVersion {
                got: 1,
                first_byte: 0x40
            })
        );
        // Two CSRCs announced, one present.
        let mut raw = vec![0x82, 33, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1];
        raw.extend_from_slice(&[0; 4]);
        assert_eq!(
            parse(&raw),
            Err(RtpError::CsrcTruncated {
                seq: SeqNo::new(5),
                csrc_count: 2,
                needed: 20,
                len: 16
            })
        );
        // Extension header cut short, then an extension longer than the datagram.
        let mut raw = vec![0x90, 33, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE];
        assert_eq!(
            parse(&raw),
            Err(RtpError::ExtensionTruncated {
                seq: SeqNo::new(6),
                offset: 12,
                needed: 16,
                len: 13
            })
        );
        raw.extend_from_slice(&[0xDE, 0x00, 0x02, 1, 2, 3, 4]);
        let err = parse(&raw).unwrap_err();
        assert_eq!(
            err,
            RtpError::ExtensionTruncated {
                seq: SeqNo::new(6),
                offset: 12,
                needed: 24,
                len: 20
            }
        );
        assert_eq!(
            err.to_string(),
            "seq 6: header extension at offset 12 needs 24 bytes in all, datagram is 20"
        );
        // Padding count 0, and padding longer than what follows the header.
        let raw = [0xA0, 33, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0x47, 0];
        assert_eq!(
            parse(&raw),
            Err(RtpError::ZeroPadding { seq: SeqNo::new(7) })
        );
        let raw = [0xA0, 33, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0x47, 3];
        assert_eq!(
            parse(&raw),
            Err(RtpError::PaddingTooLong {
                seq: SeqNo::new(8),
                padding: 3,
                available: 2,
                header_len: 12
            })
        );
        // Padding that exactly consumes what follows the header is fine.
        let raw = [0xA0, 33, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0x47, 2];
        assert_eq!(parse(&raw).unwrap().payload(), &[] as &[u8]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = RtpPacket::parse(Bytes::from(data.clone())) {
                prop_assert!(p.header_len() + p.payload().len() + p.padding_len() == data.len());
                prop_assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
                let _ = (p.extension(), format!("{p:?}"));
                prop_assert_eq!(p.clone().into_payload(), Bytes::copy_from_slice(p.payload()));
            }
        }

        #[test]
        fn builder_round_trips(
            seq: u16, ts: u32, ssrc: u32, pt in 0u8..128, marker: bool,
            csrcs in proptest::collection::vec(any::<u32>(), 0..16),
            ext in proptest::option::of((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..12))),
            padding: u8,
            payload in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let b = RtpPacketBuilder {
                payload_type: pt, marker, seq: SeqNo::new(seq), timestamp: ts, ssrc,
                csrcs: csrcs.clone(), extension: ext.clone(), padding,
            };
            let p = RtpPacket::parse(b.build(&payload)).unwrap();
            prop_assert_eq!(p.seq(), SeqNo::new(seq));
            prop_assert_eq!(p.timestamp(), ts);
            prop_assert_eq!(p.ssrc(), ssrc);
            prop_assert_eq!(p.payload_type(), pt);
            prop_assert_eq!(p.marker(), marker);
            prop_assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs.iter().copied().take(15).collect::<Vec<_>>());
            prop_assert_eq!(p.extension().map(|e| e.profile), ext.as_ref().map(|e| e.0));
            if let (Some(e), Some((_, body))) = (p.extension(), &ext) {
                prop_assert_eq!(&e.data[..body.len()], &body[..]);
            }
            prop_assert_eq!(p.padding_len(), usize::from(padding));
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
