//! Hand-built SRT datagrams, byte by byte, for unit tests, the panic-table
//! regression tests, fuzz seeds and the fuzz harness. They follow the
//! layouts in [`super::gate`] and may be made wrong on purpose: nothing
//! here goes through srt-protocol's serialiser, so a test can send what a
//! hostile peer would (the constructions of the prototype's `hostile.py`).

use super::gate::{HEADER_LEN, extension};

/// A control packet: header (§3.2) with `ty`/`subtype`, type-specific
/// information 0, timestamp 0, then `body`.
pub fn control(ty: u16, subtype: u16, dest: u32, body: &[u8]) -> Vec<u8> {
    control_with_info(ty, subtype, 0, dest, body)
}

/// [`control`] with the header's type-specific information word set (the
/// ACK number of an ACK, the error code of a peer error).
pub fn control_with_info(ty: u16, subtype: u16, info: u32, dest: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(
        &(0x8000_0000 | (u32::from(ty & 0x7FFF) << 16) | u32::from(subtype)).to_be_bytes(),
    );
    out.extend_from_slice(&info.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&dest.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A data packet (§3.1): sequence number `seq`, a solo message (PP = 11,
/// in order, no encryption), message number 1, timestamp 0.
pub fn data_packet(dest: u32, seq: u32, payload: &[u8]) -> Vec<u8> {
    data_packet_at(dest, seq, 1, 0, payload)
}

/// [`data_packet`] with message number `message` and timestamp
/// `timestamp_us` (µs since the connection started; it sets the TSBPD
/// release time).
pub fn data_packet_at(
    dest: u32,
    seq: u32,
    message: u32,
    timestamp_us: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(seq & 0x7FFF_FFFF).to_be_bytes());
    out.extend_from_slice(&(0xE000_0000u32 | (message & 0x03FF_FFFF)).to_be_bytes());
    out.extend_from_slice(&timestamp_us.to_be_bytes());
    out.extend_from_slice(&dest.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The handshake CIF (§3.2.1) with peer IP 127.0.0.1.
#[allow(clippy::too_many_arguments, reason = "one argument per CIF field")]
fn handshake_cif(
    version: u32,
    encryption: u16,
    flags: u16,
    mss: u32,
    handshake_type: i32,
    socket_id: u32,
    cookie: i32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&encryption.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&0x1234_5678u32.to_be_bytes()); // initial sequence number
    out.extend_from_slice(&mss.to_be_bytes());
    out.extend_from_slice(&8192u32.to_be_bytes()); // flow window
    out.extend_from_slice(&handshake_type.to_be_bytes());
    out.extend_from_slice(&socket_id.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    // Peer IP: IPv4 in the first word, little-endian as libsrt writes it.
    out.extend_from_slice(&[1, 0, 0, 127]);
    out.extend_from_slice(&[0; 12]);
    out
}

/// A libsrt-style induction: version 4, extension field 2 (the UDT socket
/// type "datagram"), cookie 0 (§4.3.1.1).
pub fn induction(socket_id: u32) -> Vec<u8> {
    let mut out = control(0, 0, 0, &[]);
    out.extend(handshake_cif(4, 0, 2, 1500, 1, socket_id, 0));
    out
}

/// Packs text into byte-swapped 32-bit words, zero-padded (§3.2.1.3).
pub fn pack_words(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 3);
    for word in text.chunks(4) {
        let mut w = [0u8; 4];
        for (slot, byte) in w.iter_mut().zip(word) {
            *slot = *byte;
        }
        w.reverse();
        out.extend_from_slice(&w);
    }
    out
}

/// A key material message (§3.2.2) for AES-CTR with a `key_len`-byte key
/// and key flags `kf` (1 even, 2 odd, 3 both; 0 is malformed). The salt and
/// wrapped keys are a fixed filler: they unwrap with no passphrase, so a
/// listener answers them with "bad secret" (1010).
pub fn key_material(key_len: u8, kf: u8) -> Vec<u8> {
    let keys = usize::from((kf & 3).count_ones() as u8);
    let mut out = vec![
        0x12,
        0x20,
        0x29,
        kf & 3,
        0,
        0,
        0,
        0,
        2,
        0,
        2,
        0,
        0,
        0,
        4,
        key_len / 4,
    ];
    out.extend(std::iter::repeat_n(
        0xA5,
        16 + usize::from(key_len) * keys + 8,
    ));
    out
}

/// A caller's HSv5 conclusion, built extension by extension.
#[derive(Debug, Clone)]
pub struct Conclusion {
    version: u32,
    encryption: Option<u16>,
    mss: u32,
    handshake_type: i32,
    socket_id: u32,
    cookie: i32,
    hsreq: Option<u16>,
    extensions: Vec<(u16, Vec<u8>)>,
}

impl Conclusion {
    /// A conclusion from caller socket `socket_id` with `cookie`, MSS 1500
    /// and an HSREQ asking 120 ms latency.
    pub fn new(socket_id: u32, cookie: i32) -> Conclusion {
        Conclusion {
            version: 5,
            encryption: None,
            mss: 1500,
            handshake_type: -1,
            socket_id,
            cookie,
            hsreq: Some(120),
            extensions: Vec::new(),
        }
    }

    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    pub fn mss(mut self, mss: u32) -> Self {
        self.mss = mss;
        self
    }

    pub fn handshake_type(mut self, handshake_type: i32) -> Self {
        self.handshake_type = handshake_type;
        self
    }

    /// The CIF encryption field; by default the last KM's key length / 8.
    pub fn encryption_field(mut self, value: u16) -> Self {
        self.encryption = Some(value);
        self
    }

    /// Both TSBPD delays of the HSREQ.
    pub fn latency(mut self, ms: u16) -> Self {
        self.hsreq = Some(ms);
        self
    }

    pub fn no_hsreq(mut self) -> Self {
        self.hsreq = None;
        self
    }

    pub fn stream_id(self, sid: &str) -> Self {
        self.extension(extension::SID, &pack_words(sid.as_bytes()))
    }

    pub fn key_material(self, km: Vec<u8>) -> Self {
        self.extension(extension::KMREQ, &km)
    }

    /// Any extension; `body` is padded to whole words.
    pub fn extension(mut self, ty: u16, body: &[u8]) -> Self {
        let mut body = body.to_vec();
        body.resize(body.len().div_ceil(4) * 4, 0);
        self.extensions.push((ty, body));
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let mut extensions = Vec::new();
        let mut flags = 0u16;
        let mut encryption = 0u16;
        if let Some(ms) = self.hsreq {
            flags |= 1;
            extensions.extend_from_slice(&[0, 1, 0, 3]);
            extensions.extend_from_slice(&0x0001_0501u32.to_be_bytes()); // SRT 1.5.1
            extensions.extend_from_slice(&0xBFu32.to_be_bytes()); // TSBPD, TLPKTDROP, NAKREPORT, REXMITFLG
            extensions.extend_from_slice(&((u32::from(ms) << 16) | u32::from(ms)).to_be_bytes());
        }
        for (ty, body) in &self.extensions {
            match *ty {
                extension::KMREQ => {
                    flags |= 2;
                    encryption = body.get(15).map_or(0, |k| u16::from(*k) / 2);
                }
                extension::SID..=extension::GROUP => flags |= 4,
                _ => {}
            }
            extensions.extend_from_slice(&ty.to_be_bytes());
            extensions.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
            extensions.extend_from_slice(body);
        }
        let mut out = control(0, 0, 0, &[]);
        out.extend(handshake_cif(
            self.version,
            self.encryption.unwrap_or(encryption),
            flags,
            self.mss,
            self.handshake_type,
            self.socket_id,
            self.cookie,
        ));
        out.extend(extensions);
        out
    }
}
