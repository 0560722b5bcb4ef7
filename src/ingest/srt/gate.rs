//! The handshake and control-packet gate: reads raw SRT datagrams *before*
//! any byte reaches `srt_protocol::packet::Packet::parse` or a state machine,
//! so that none of srt-protocol 0.4.4's network-reachable panics (the "P"
//! rows of the table in `docs/srt-ingest-notes.md` §2) can be triggered.
//!
//! Layouts follow the SRT RFC draft (draft-sharabayko-srt-01): §3 (packet
//! header), §3.2.1 (handshake CIF), §3.2.1.1 (HSREQ), §3.2.1.2 (KMREQ),
//! §3.2.1.3 (stream id), §3.2.2 (key material message), §3.2.5 (NAK loss
//! list). Every read is a checked `get`; nothing here can panic.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |1|        Control Type         |            Subtype            |  header (§3.2)
//! |                   Type-specific Information                   |
//! |                           Timestamp                           |
//! |                   Destination Socket ID                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                            Version                            |  handshake CIF
//! |        Encryption Field       |        Extension Field        |  (§3.2.1), 48 bytes
//! |                 Initial Packet Sequence Number                |
//! |                 Maximum Transmission Unit Size                |
//! |                    Maximum Flow Window Size                   |
//! |                         Handshake Type                        |
//! |                         SRT Socket ID                         |
//! |                           SYN Cookie                          |
//! |                   Peer IP Address (128 bits)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Extension Type        |        Extension Length       |  repeated: length in
//! |                       Extension Contents ...                  |  32-bit words
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// SRT packet header size (§3).
pub const HEADER_LEN: usize = 16;
/// Handshake CIF without extensions (§3.2.1): 8 words and a 128-bit peer IP.
pub const HANDSHAKE_CIF_LEN: usize = 48;
/// Header and fixed CIF: the shortest handshake.
pub const HANDSHAKE_LEN: usize = HEADER_LEN + HANDSHAKE_CIF_LEN;

/// Control types (§3.2, table 1).
pub mod control_type {
    pub const HANDSHAKE: u16 = 0x0000;
    pub const KEEPALIVE: u16 = 0x0001;
    pub const ACK: u16 = 0x0002;
    pub const NAK: u16 = 0x0003;
    pub const CONGESTION_WARNING: u16 = 0x0004;
    pub const SHUTDOWN: u16 = 0x0005;
    pub const ACK2: u16 = 0x0006;
    pub const DROP_REQUEST: u16 = 0x0007;
    pub const PEER_ERROR: u16 = 0x0008;
    /// "User-defined" type: SRT's HSREQ/HSRSP/KMREQ/KMRSP as subtypes 1–4.
    pub const USER: u16 = 0x7FFF;
}

/// Handshake extension types (§3.2.1, table 5); the same numbers are the
/// subtypes of control type 0x7FFF.
pub mod extension {
    pub const HSREQ: u16 = 1;
    pub const HSRSP: u16 = 2;
    pub const KMREQ: u16 = 3;
    pub const KMRSP: u16 = 4;
    pub const SID: u16 = 5;
    pub const CONGESTION: u16 = 6;
    pub const FILTER: u16 = 7;
    pub const GROUP: u16 = 8;
}

/// Handshake types (§3.2.1, table 4).
pub const HANDSHAKE_INDUCTION: i32 = 1;
pub const HANDSHAKE_CONCLUSION: i32 = -1;

/// HSv5 extension flags in the CIF extension field (§3.2.1, table 3).
const FLAG_HSREQ: u16 = 0x1;
const FLAG_KMREQ: u16 = 0x2;
const FLAG_CONFIG: u16 = 0x4;

/// Largest stream id the access-control spec allows (512 bytes).
pub const MAX_STREAM_ID_LEN: usize = 512;

/// Maximum segment sizes a caller may announce. srt-protocol sends
/// `min(own payload size, peer MSS)`-byte packets: MSS 0 makes its
/// encapsulation loop forever (P13) and tiny values multiply packets.
/// 576 is the IPv4 minimum reassembly size (RFC 791).
pub const MSS_RANGE: std::ops::RangeInclusive<u32> = 576..=1500;

/// The KM cipher srt-protocol 0.4.4 implements: AES-CTR (§3.2.2 "Cipher").
pub const CIPHER_AES_CTR: u8 = 2;

/// Why the gate discarded a datagram. Discards are counted per reason and
/// never logged per packet: a flood would turn the log into a lever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Discard {
    #[error("shorter than its fixed part ({0} bytes)")]
    TooShort(usize),
    #[error("handshake version {0}: an induction must be 4 or 5")]
    BadVersion(u32),
    #[error("conclusion with handshake version {0}: only HSv5 (5) is served")]
    NotV5Conclusion(u32),
    #[error("handshake type {0} is neither induction (1) nor conclusion (-1)")]
    BadHandshakeType(i32),
    #[error("caller socket id 0")]
    BadSocketId,
    #[error("MSS {0} outside 576..=1500")]
    BadMss(u32),
    #[error("extension at byte {at} runs past the end of the datagram")]
    BadExtensionLength { at: usize },
    #[error("extension type {ty} at byte {at} is repeated")]
    DuplicateExtension { ty: u16, at: usize },
    #[error("conclusion without an HSREQ extension")]
    MissingHsReq,
    #[error("HSRSP in a caller's conclusion")]
    HsRspInRequest,
    #[error("KMRSP in a caller's conclusion (P2)")]
    KmRspInRequest,
    #[error("malformed key material")]
    BadKm,
    #[error("stream id extension empty, over 512 bytes or not UTF-8")]
    BadStreamId,
    #[error("control type {ty:#06x} subtype {subtype} is not served")]
    UnsupportedControl { ty: u16, subtype: u16 },
    #[error("NAK loss list empty or ending inside a range (P10)")]
    BadLossList,
}

impl Discard {
    /// A stable name, for counters and metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Discard::TooShort(_) => "too_short",
            Discard::BadVersion(_) => "bad_version",
            Discard::NotV5Conclusion(_) => "not_v5_conclusion",
            Discard::BadHandshakeType(_) => "bad_handshake_type",
            Discard::BadSocketId => "bad_socket_id",
            Discard::BadMss(_) => "bad_mss",
            Discard::BadExtensionLength { .. } => "bad_extension_length",
            Discard::DuplicateExtension { .. } => "duplicate_extension",
            Discard::MissingHsReq => "missing_hsreq",
            Discard::HsRspInRequest => "hsrsp_in_request",
            Discard::KmRspInRequest => "kmrsp_in_request",
            Discard::BadKm => "bad_km",
            Discard::BadStreamId => "bad_stream_id",
            Discard::UnsupportedControl { .. } => "unsupported_control",
            Discard::BadLossList => "bad_loss_list",
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// What a datagram is, judged from its 16-byte header alone (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Data { dest: u32 },
    Control { ty: u16, subtype: u16, dest: u32 },
}

impl Kind {
    pub fn read(datagram: &[u8]) -> Result<Kind, Discard> {
        let short = || Discard::TooShort(datagram.len());
        let w0 = be32(datagram, 0).ok_or_else(short)?;
        let dest = be32(datagram, 12).ok_or_else(short)?;
        if w0 & 0x8000_0000 == 0 {
            return Ok(Kind::Data { dest });
        }
        Ok(Kind::Control {
            ty: ((w0 >> 16) & 0x7FFF) as u16,
            subtype: (w0 & 0xFFFF) as u16,
            dest,
        })
    }

    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            Kind::Control {
                ty: control_type::HANDSHAKE,
                ..
            }
        )
    }
}

/// A caller's key material request (§3.2.2), reduced to what the listener
/// decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Key length in bytes: 16, 24 or 32.
    pub key_len: u8,
    /// Wrapped keys: 1 (even or odd) or 2 (both, during a key change).
    pub keys: u8,
    /// Cipher: 2 = AES-CTR, the only one srt-protocol 0.4.4 implements;
    /// libsrt 1.5.2+ sends 3 for AES-GCM (`cryptomode=2`).
    pub cipher: u8,
}

/// Checks a key material message (a KMREQ/KMRSP extension body or a
/// 0x7FFF/3,4 control packet body) against everything srt-protocol's
/// `KeyingMaterialMessage::parse`, `serialize` and
/// `StreamEncryptionKeys::unwrap_from` assume (P11, P12): version 1,
/// packet type 2, signature 0x2029 ("HAI"), at least one key (KF ≠ 0), no
/// authentication, stream encapsulation 2, a 16-byte salt, a 16/24/32-byte
/// key, and enough bytes for the wrapped keys and their 8-byte ICV.
///
/// ```text
/// |S|V=1|PT=2 |   Sign = 0x2029 (16)          |  Resv  |KF |
/// |                          KEKI                          |
/// |    Cipher     |     Auth      |      SE       |  Resv  |
/// |          Resv2 (16)           |    SLen/4     | KLen/4 |
/// |                      Salt (SLen bytes)                 |
/// |            Wrapped keys (KLen × keys + 8 bytes)        |
/// ```
pub fn check_key_material(km: &[u8]) -> Result<KeyMaterial, Discard> {
    let byte = |at: usize| km.get(at).copied().ok_or(Discard::BadKm);
    let version_and_type = byte(0)?;
    let sign = be16(km, 1).ok_or(Discard::BadKm)?;
    let key_flags = byte(3)? & 0b11;
    let cipher = byte(8)?;
    let auth = byte(9)?;
    let encapsulation = byte(10)?;
    let salt_len = usize::from(byte(14)?) * 4;
    let key_len = usize::from(byte(15)?) * 4;
    let keys = key_flags.count_ones() as usize;
    let needed = 16 + salt_len + key_len * keys + 8;
    let ok = version_and_type == 0x12
        && sign == 0x2029
        && keys > 0
        && auth == 0
        && encapsulation == 2
        && salt_len == 16
        && matches!(key_len, 16 | 24 | 32)
        && km.len() >= needed;
    if !ok {
        return Err(Discard::BadKm);
    }
    Ok(KeyMaterial {
        key_len: key_len as u8,
        keys: keys as u8,
        cipher,
    })
}

impl KeyMaterial {
    /// The message's length: header, 16-byte salt, wrapped keys and ICV.
    /// srt-protocol reads exactly this much and no more.
    pub fn message_len(&self) -> usize {
        16 + 16 + usize::from(self.key_len) * usize::from(self.keys) + 8
    }
}

/// The HSREQ body srt-protocol reads (§3.2.1.1): version, flags, and the
/// two TSBPD delays.
const HSREQ_LEN: usize = 12;

/// A feature a caller asked for in its conclusion that srt-protocol 0.4.4
/// does not implement (its parser reaches `unimplemented!` on these
/// extensions, P4). The listener refuses the caller with the matching core
/// reject code, as libsrt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// A congestion controller other than `live` (libsrt `congestion=file`).
    Congestion,
    /// A packet filter (libsrt `packetfilter=fec…`).
    PacketFilter,
    /// Connection bonding (libsrt groups).
    Group,
}

/// The parts of a handshake the listener decides on, read from the raw CIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub version: u32,
    /// CIF encryption field: the key length / 8, or 0 when unset.
    pub encryption_field: u16,
    pub mss: u32,
    pub handshake_type: i32,
    pub socket_id: u32,
    pub cookie: i32,
    /// The larger of the HSREQ's two TSBPD delays, in ms. srt-protocol
    /// sizes per-connection buffers from it (`AckHistoryWindow` reserves
    /// 20,000 entries per second, P14), so the listener bounds it.
    pub max_latency_ms: u16,
    pub key_material: Option<KeyMaterial>,
    /// The stream id as sent (word packing undone), not percent-decoded.
    pub stream_id: Option<String>,
    /// The first unsupported feature the caller asked for, if any.
    pub unsupported: Option<Unsupported>,
    /// The HSREQ, KMREQ and SID extensions to pass on: type and body range.
    /// Bodies are cut to what srt-protocol reads: its parser does not skip
    /// the rest of an extension but reads it as the next one (a longer
    /// HSREQ hid a filter extension from the gate this way, found by the
    /// `srt_gate` fuzzer: P20).
    keep: Vec<(u16, Range<usize>)>,
}

impl Handshake {
    /// Reads a handshake control packet (control type 0). An induction is
    /// read to its fixed CIF only; a conclusion's extensions are all checked.
    pub fn read(datagram: &[u8]) -> Result<Handshake, Discard> {
        let short = || Discard::TooShort(datagram.len());
        if datagram.len() < HANDSHAKE_LEN {
            return Err(short());
        }
        let field32 = |offset: usize| be32(datagram, HEADER_LEN + offset).ok_or_else(short);
        let field16 = |offset: usize| be16(datagram, HEADER_LEN + offset).ok_or_else(short);
        let mut hs = Handshake {
            version: field32(0)?,
            encryption_field: field16(4)?,
            mss: field32(12)?,
            handshake_type: field32(20)? as i32,
            socket_id: field32(24)?,
            cookie: field32(28)? as i32,
            max_latency_ms: 0,
            key_material: None,
            stream_id: None,
            unsupported: None,
            keep: Vec::new(),
        };
        match hs.handshake_type {
            // libsrt callers send a version 4 (UDT legacy) induction; the
            // listener answers with 5 and the caller concludes in HSv5
            // (§4.3.1.1).
            HANDSHAKE_INDUCTION if hs.version == 4 || hs.version == 5 => return Ok(hs),
            HANDSHAKE_INDUCTION => return Err(Discard::BadVersion(hs.version)),
            HANDSHAKE_CONCLUSION => {}
            other => return Err(Discard::BadHandshakeType(other)),
        }
        if hs.version != 5 {
            return Err(Discard::NotV5Conclusion(hs.version));
        }
        if hs.socket_id == 0 {
            return Err(Discard::BadSocketId);
        }
        if !MSS_RANGE.contains(&hs.mss) {
            return Err(Discard::BadMss(hs.mss));
        }
        hs.read_extensions(datagram)?;
        Ok(hs)
    }

    fn read_extensions(&mut self, datagram: &[u8]) -> Result<(), Discard> {
        let mut has_hsreq = false;
        let mut at = HANDSHAKE_LEN;
        while at < datagram.len() {
            let bad_length = Discard::BadExtensionLength { at };
            let ty = be16(datagram, at).ok_or(bad_length)?;
            let words = usize::from(be16(datagram, at + 2).ok_or(bad_length)?);
            let start = at + 4;
            let end = start + words * 4;
            let body = datagram.get(start..end).ok_or(bad_length)?;
            let duplicate = Discard::DuplicateExtension { ty, at };
            match ty {
                extension::HSREQ => {
                    if has_hsreq {
                        return Err(duplicate);
                    }
                    // Version, flags, then the receiver and sender TSBPD
                    // delays as two 16-bit fields (§3.2.1.1).
                    let (Some(receiver), Some(sender)) = (be16(body, 8), be16(body, 10)) else {
                        return Err(bad_length);
                    };
                    has_hsreq = true;
                    self.max_latency_ms = receiver.max(sender);
                    self.keep.push((ty, start..start + HSREQ_LEN));
                }
                extension::HSRSP => return Err(Discard::HsRspInRequest),
                extension::KMREQ => {
                    if self.key_material.is_some() {
                        return Err(duplicate);
                    }
                    let km = check_key_material(body)?;
                    self.key_material = Some(km);
                    self.keep.push((ty, start..start + km.message_len()));
                }
                extension::KMRSP => return Err(Discard::KmRspInRequest),
                extension::SID => {
                    if self.stream_id.is_some() {
                        return Err(duplicate);
                    }
                    // An empty SID makes srt-protocol's `le_bytes_to_string`
                    // read past its end when another extension follows (P5).
                    if body.is_empty() || body.len() > MAX_STREAM_ID_LEN {
                        return Err(Discard::BadStreamId);
                    }
                    let sid =
                        String::from_utf8(unpack_words(body)).map_err(|_| Discard::BadStreamId)?;
                    if sid.is_empty() {
                        return Err(Discard::BadStreamId);
                    }
                    self.stream_id = Some(sid);
                    self.keep.push((ty, start..end));
                }
                extension::CONGESTION if unpack_words(body) != b"live" => {
                    self.unsupported.get_or_insert(Unsupported::Congestion);
                }
                extension::CONGESTION => {}
                extension::FILTER => {
                    self.unsupported.get_or_insert(Unsupported::PacketFilter);
                }
                extension::GROUP => {
                    self.unsupported.get_or_insert(Unsupported::Group);
                }
                // Unknown extensions are skipped, as libsrt does; they never
                // reach srt-protocol (its parser panics on them, P4).
                _ => {}
            }
            at = end;
        }
        if !has_hsreq {
            return Err(Discard::MissingHsReq);
        }
        Ok(())
    }

    pub fn is_induction(&self) -> bool {
        self.handshake_type == HANDSHAKE_INDUCTION
    }

    /// A canonical copy of the conclusion for srt-protocol: only HSREQ,
    /// KMREQ and SID, extension flags that match them, and the encryption
    /// field set to the KM's key length. That last rewrite keeps
    /// `gen_access_control_response`'s key-size `unimplemented!` (P1) out of
    /// reach: a libsrt caller without `pbkeylen` sends 0 here and 16 in the
    /// KM, and the listener always takes the caller's key length.
    pub fn canonical(&self, datagram: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(datagram.len());
        out.put_slice(datagram.get(..HEADER_LEN + 4).unwrap_or_default());
        let encryption = self.key_material.map_or(0, |km| u16::from(km.key_len) / 8);
        let mut flags = FLAG_HSREQ;
        if self.key_material.is_some() {
            flags |= FLAG_KMREQ;
        }
        if self.stream_id.is_some() {
            flags |= FLAG_CONFIG;
        }
        out.put_u16(encryption);
        out.put_u16(flags);
        out.put_slice(
            datagram
                .get(HEADER_LEN + 8..HANDSHAKE_LEN)
                .unwrap_or_default(),
        );
        for (ty, body) in &self.keep {
            let body = datagram.get(body.clone()).unwrap_or_default();
            out.put_u16(*ty);
            out.put_u16((body.len() / 4) as u16);
            out.put_slice(body);
        }
        out.freeze()
    }
}

/// Undoes the SID/congestion word packing (§3.2.1.3): the text is cut into
/// 32-bit words, each byte-swapped, the last zero-padded.
pub fn unpack_words(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for word in body.chunks(4) {
        out.extend(word.iter().rev());
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    out
}

/// Checks a control packet addressed to an established connection. It
/// refuses every type srt-protocol 0.4.4's `DuplexConnection` reaches a
/// `todo!()`/`unimplemented!()` on: congestion warning (4, P7), peer error
/// (8, P8), 0x7FFF with a subtype other than HSREQ/HSRSP/KMREQ/KMRSP (P5,
/// P6, P9); NAKs whose compressed loss list ends inside a range (P10) or
/// lists too much (P19); malformed key refreshes (P11, P12); and every drop
/// request (7, P21): the receive buffer slices a range it computes from the
/// request's sequence numbers and panics when they are out of order
/// relative to its front. A live receiver loses nothing by ignoring them:
/// it drops too-late packets itself (TLPKTDROP) and stops reporting them.
pub fn check_established_control(datagram: &[u8], ty: u16, subtype: u16) -> Result<(), Discard> {
    let body = datagram
        .get(HEADER_LEN..)
        .ok_or(Discard::TooShort(datagram.len()))?;
    match (ty, subtype) {
        (
            control_type::KEEPALIVE
            | control_type::ACK
            | control_type::SHUTDOWN
            | control_type::ACK2,
            _,
        ) => Ok(()),
        (control_type::NAK, _) => check_loss_list(body),
        (control_type::USER, extension::HSREQ | extension::HSRSP) if body.len() >= 12 => Ok(()),
        (control_type::USER, extension::KMREQ | extension::KMRSP) => {
            check_key_material(body).map(|_| ())
        }
        _ => Err(Discard::UnsupportedControl { ty, subtype }),
    }
}

/// The most sequence numbers one NAK may list. srt-protocol's sender walks
/// every listed number one by one (`LossIterator`), so one NAK listing 2³¹
/// numbers stalled the whole endpoint for minutes (P19, found by the
/// `srt_endpoint` fuzzer). A real receiver cannot lose more than is in
/// flight: libsrt's default flow window is 25,600 packets.
pub const MAX_NAK_SEQUENCE_NUMBERS: u64 = 32_768;

/// §3.2.5: a word with the top bit set starts a range and must be followed
/// by the range's last sequence number (top bit clear). In all, at most
/// [`MAX_NAK_SEQUENCE_NUMBERS`].
///
/// A range must end above its start, although sequence numbers wrap at
/// 2³¹: srt-protocol's `DecompressLossList` counts from start + 1 until it
/// meets the end, in plain `u32`, so a range that wraps or ends where it
/// starts walks through 2³² numbers (P19 again; libsrt sends a one-number
/// loss as a single word). Such NAKs are discarded; the cost is that a player's losses
/// reported across the sequence number wrap (once every 2³¹ packets) are
/// not retransmitted.
fn check_loss_list(body: &[u8]) -> Result<(), Discard> {
    let mut words = body.chunks_exact(4).map(|w| be32(w, 0).unwrap_or_default());
    let mut listed = 0u64;
    while let Some(word) = words.next() {
        if word & 0x8000_0000 == 0 {
            listed += 1;
            continue;
        }
        let start = word & 0x7FFF_FFFF;
        match words.next() {
            Some(end) if end & 0x8000_0000 == 0 && end > start => {
                listed += u64::from(end - start) + 1;
            }
            _ => return Err(Discard::BadLossList),
        }
    }
    if listed == 0 || listed > MAX_NAK_SEQUENCE_NUMBERS {
        return Err(Discard::BadLossList);
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::craft::*;
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(Kind::read(&[0; 15]), Err(Discard::TooShort(15)));
        assert_eq!(
            Kind::read(&data_packet(7, 1, b"x")),
            Ok(Kind::Data { dest: 7 })
        );
        let ka = control(control_type::KEEPALIVE, 0, 9, &[0; 4]);
        assert_eq!(
            Kind::read(&ka),
            Ok(Kind::Control {
                ty: 1,
                subtype: 0,
                dest: 9
            })
        );
    }

    #[test]
    fn loss_lists() {
        assert_eq!(check_loss_list(&[0x80, 0, 0, 1]), Err(Discard::BadLossList));
        assert_eq!(check_loss_list(&[0x80, 0, 0, 1, 0, 0, 0, 5]), Ok(()));
        assert_eq!(check_loss_list(&[0, 0, 0, 1]), Ok(()));
        assert_eq!(check_loss_list(&[]), Err(Discard::BadLossList));
        assert_eq!(
            check_loss_list(&[0x80, 0, 0, 1, 0x80, 0, 0, 5]),
            Err(Discard::BadLossList)
        );
        // Ranges are bounded: 32,768 numbers pass, one more does not, and a
        // range may not run backwards (srt-protocol would walk 2^32 numbers).
        let range = |start: u32, end: u32| {
            let mut b = (start | 0x8000_0000).to_be_bytes().to_vec();
            b.extend_from_slice(&end.to_be_bytes());
            b
        };
        assert_eq!(check_loss_list(&range(10, 10 + 32_767)), Ok(()));
        assert_eq!(
            check_loss_list(&range(10, 10 + 32_768)),
            Err(Discard::BadLossList)
        );
        assert_eq!(check_loss_list(&range(5, 4)), Err(Discard::BadLossList));
        assert_eq!(check_loss_list(&range(5, 5)), Err(Discard::BadLossList));
        assert_eq!(check_loss_list(&range(5, 6)), Ok(()));
        assert_eq!(
            check_loss_list(&range(0x7FFF_FFF0, 0x10)),
            Err(Discard::BadLossList)
        );
        assert_eq!(check_loss_list(&range(0x7FFF_FFF0, 0x7FFF_FFFF)), Ok(()));
        let mut many = range(0, 30_000);
        many.extend(range(100_000, 103_000));
        assert_eq!(check_loss_list(&many), Err(Discard::BadLossList));
    }

    #[test]
    fn word_packing() {
        // "live/cam1" packed as byte-swapped words: "evil" "mac/" "\0\0\01"
        assert_eq!(unpack_words(b"evilmac/\0\0\x001"), b"live/cam1");
        assert_eq!(pack_words(b"live/cam1"), b"evilmac/\0\0\x001");
    }

    #[test]
    fn key_material_checks() {
        assert_eq!(
            check_key_material(&key_material(16, 1)),
            Ok(KeyMaterial {
                key_len: 16,
                keys: 1,
                cipher: 2
            })
        );
        assert_eq!(
            check_key_material(&key_material(32, 3)).unwrap().key_len,
            32
        );
        assert_eq!(
            check_key_material(&key_material(16, 0)),
            Err(Discard::BadKm)
        );
        assert_eq!(
            check_key_material(&key_material(20, 1)),
            Err(Discard::BadKm)
        );
        let km = key_material(16, 1);
        assert_eq!(check_key_material(&km[..km.len() - 1]), Err(Discard::BadKm));
        assert_eq!(check_key_material(&[]), Err(Discard::BadKm));
    }

    #[test]
    fn induction_reads_fixed_part_only() {
        let hs = Handshake::read(&induction(0x1234)).unwrap();
        assert!(hs.is_induction());
        assert_eq!(hs.socket_id, 0x1234);
        let mut v6 = induction(1);
        v6[HEADER_LEN + 3] = 6;
        assert_eq!(Handshake::read(&v6), Err(Discard::BadVersion(6)));
        assert_eq!(
            Handshake::read(&induction(1)[..HANDSHAKE_LEN - 1]),
            Err(Discard::TooShort(HANDSHAKE_LEN - 1))
        );
    }

    #[test]
    fn conclusion_fields() {
        let d = Conclusion::new(5, 77)
            .latency(200)
            .stream_id("#!::r=live/cam1")
            .key_material(key_material(24, 1))
            .build();
        let hs = Handshake::read(&d).unwrap();
        assert_eq!(hs.socket_id, 5);
        assert_eq!(hs.cookie, 77);
        assert_eq!(hs.max_latency_ms, 200);
        assert_eq!(hs.stream_id.as_deref(), Some("#!::r=live/cam1"));
        assert_eq!(hs.key_material.map(|k| k.key_len), Some(24));
        assert_eq!(hs.unsupported, None);
    }

    #[test]
    fn conclusion_refusals() {
        let base = || Conclusion::new(5, 1).stream_id("live/cam1");
        let cases: Vec<(Vec<u8>, Discard)> = vec![
            (base().mss(0).build(), Discard::BadMss(0)),
            (base().mss(1501).build(), Discard::BadMss(1501)),
            (Conclusion::new(0, 1).build(), Discard::BadSocketId),
            (base().version(4).build(), Discard::NotV5Conclusion(4)),
            (
                base().handshake_type(0).build(),
                Discard::BadHandshakeType(0),
            ),
            (base().no_hsreq().build(), Discard::MissingHsReq),
            (
                base().extension(extension::HSRSP, &[0; 12]).build(),
                Discard::HsRspInRequest,
            ),
            (
                base()
                    .extension(extension::KMRSP, &key_material(16, 1))
                    .build(),
                Discard::KmRspInRequest,
            ),
            (
                base().key_material(key_material(16, 0)).build(),
                Discard::BadKm,
            ),
            (
                Conclusion::new(5, 1).extension(extension::SID, &[]).build(),
                Discard::BadStreamId,
            ),
            (
                Conclusion::new(5, 1)
                    .extension(extension::SID, &[0xFF; 4])
                    .build(),
                Discard::BadStreamId,
            ),
            (
                Conclusion::new(5, 1)
                    .extension(extension::SID, &[0; 516])
                    .build(),
                Discard::BadStreamId,
            ),
        ];
        for (datagram, expected) in cases {
            assert_eq!(Handshake::read(&datagram), Err(expected), "{expected}");
        }
        // An extension whose length runs past the end.
        let mut d = base().build();
        d.extend_from_slice(&[0, 9, 0, 4, 1, 2]);
        assert!(matches!(
            Handshake::read(&d),
            Err(Discard::BadExtensionLength { .. })
        ));
        // Duplicates.
        let d = base().stream_id("live/cam2").build();
        assert!(matches!(
            Handshake::read(&d),
            Err(Discard::DuplicateExtension { ty: 5, .. })
        ));
    }

    #[test]
    fn unsupported_features_are_recorded_and_stripped() {
        let read = |ty: u16, body: &[u8]| {
            let d = Conclusion::new(5, 1)
                .stream_id("live/cam1")
                .extension(ty, body)
                .build();
            let hs = Handshake::read(&d).unwrap();
            let canonical = hs.canonical(&d);
            assert_eq!(Handshake::read(&canonical).unwrap().unsupported, None);
            hs.unsupported
        };
        assert_eq!(
            read(extension::CONGESTION, &pack_words(b"file")),
            Some(Unsupported::Congestion)
        );
        assert_eq!(read(extension::CONGESTION, &pack_words(b"live")), None);
        assert_eq!(
            read(extension::FILTER, &pack_words(b"fec,cols:10")),
            Some(Unsupported::PacketFilter)
        );
        assert_eq!(
            read(extension::GROUP, &[1, 0, 0, 0]),
            Some(Unsupported::Group)
        );
        assert_eq!(read(0, &[]), None);
        assert_eq!(read(0x1234, &[1, 2, 3, 4]), None);
    }

    #[test]
    fn canonical_extensions_are_cut_to_what_srt_protocol_reads() {
        // An HSREQ of 7 words whose tail looks like a filter extension
        // (the `srt_gate` fuzzer's find), and a KM with trailing bytes.
        let mut hsreq = vec![0, 1, 5, 1, 0, 0, 0, 0xBF, 0, 120, 0, 120];
        hsreq.extend_from_slice(&[0, 7, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut km = key_material(16, 1);
        km.extend_from_slice(&[0xEE; 8]);
        let d = Conclusion::new(5, 1)
            .no_hsreq()
            .extension(extension::HSREQ, &hsreq)
            .key_material(km)
            .stream_id("live/cam1")
            .build();
        let hs = Handshake::read(&d).unwrap();
        let canonical = hs.canonical(&d);
        assert_eq!(canonical.len(), d.len() - 16 - 8);
        assert_eq!(be16(&canonical, HANDSHAKE_LEN + 2), Some(3));
        let packet = srt_protocol::packet::Packet::parse(&mut canonical.clone(), false);
        assert!(packet.is_ok(), "{packet:?}");
    }

    #[test]
    fn canonical_conclusion() {
        // A libsrt caller without pbkeylen: encryption field 0, KM of 16 bytes,
        // and a stray extension in front of the SID.
        let d = Conclusion::new(5, 1)
            .encryption_field(0)
            .extension(0x40, &[9; 8])
            .key_material(key_material(16, 1))
            .stream_id("live/cam1")
            .build();
        let hs = Handshake::read(&d).unwrap();
        let canonical = hs.canonical(&d);
        assert_eq!(canonical.len(), d.len() - 12);
        assert_eq!(be16(&canonical, HEADER_LEN + 4), Some(2));
        assert_eq!(
            be16(&canonical, HEADER_LEN + 6),
            Some(FLAG_HSREQ | FLAG_KMREQ | FLAG_CONFIG)
        );
        let again = Handshake::read(&canonical).unwrap();
        assert_eq!(again.stream_id, hs.stream_id);
        assert_eq!(again.key_material, hs.key_material);
        assert_eq!(again.canonical(&canonical), canonical);
    }

    #[test]
    fn established_control() {
        use control_type::*;
        let ok =
            |ty, sub, body: &[u8]| check_established_control(&control(ty, sub, 1, body), ty, sub);
        assert_eq!(ok(KEEPALIVE, 0, &[0; 4]), Ok(()));
        assert_eq!(ok(ACK, 0, &[0; 4]), Ok(()));
        assert_eq!(ok(NAK, 0, &[0, 0, 0, 5]), Ok(()));
        assert_eq!(ok(NAK, 0, &[0x80, 0, 0, 5]), Err(Discard::BadLossList));
        for (ty, sub) in [
            (CONGESTION_WARNING, 0),
            (DROP_REQUEST, 0),
            (PEER_ERROR, 0),
            (USER, 0),
            (USER, 5),
            (USER, 8),
            (9, 0),
        ] {
            assert_eq!(
                ok(ty, sub, &[0; 16]),
                Err(Discard::UnsupportedControl { ty, subtype: sub })
            );
        }
        assert_eq!(ok(USER, 3, &key_material(16, 1)), Ok(()));
        assert_eq!(ok(USER, 3, &key_material(16, 0)), Err(Discard::BadKm));
        assert_eq!(
            ok(USER, 1, &[0; 8]),
            Err(Discard::UnsupportedControl {
                ty: USER,
                subtype: 1
            })
        );
    }
}
