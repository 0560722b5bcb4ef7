//! Invariant-checking entry points shared by the cargo-fuzz targets in
//! `fuzz/` and the corpus replay test (`tests/fuzz_corpus.rs`), so that
//! `cargo test` on stable runs every committed seed through exactly what the
//! fuzzer runs. Each function panics only when an invariant is broken.
//!
//! Inputs are plain byte strings; where a target needs chunking, the first
//! byte of the input picks the chunk sizes, so the fuzzer explores splits.
#![allow(clippy::panic, reason = "a broken invariant must crash the fuzzer")]

use crate::probe::Prober;
use crate::ts::continuity::CcTracker;
use crate::ts::demux::{Demux, DemuxHandler};
use crate::ts::nal::{NalScanner, VideoCodec};
use crate::ts::packet::{PacketBuilder, write_pcr};
use crate::ts::pes::{MAX_HEADER, PesHeader, read_timestamp, write_timestamp};
use crate::ts::psi::{MAX_SECTION, Pat, Pmt, SectionAssembler, crc32};
use crate::ts::resync::Resync;
use crate::ts::{PACKET_SIZE, Pid, TsPacket};

/// Splits `data` into chunks whose sizes cycle through a pattern derived
/// from `seed` (1..=255 bytes, or whole when `seed` is 0).
fn chunks(seed: u8, data: &[u8]) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![data];
    }
    let sizes = [
        usize::from(seed),
        usize::from(seed.rotate_left(3)) + 1,
        usize::from(seed) * 3 + 1,
        PACKET_SIZE,
    ];
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len())
            .copied()
            .unwrap_or(1)
            .min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// Packet view and adaptation field: parsing never panics, offsets stay in
/// the packet, and a packet rebuilt from the parsed fields parses the same.
pub fn packet(data: &[u8]) {
    let Some(block) = data.first_chunk::<PACKET_SIZE>() else {
        return;
    };
    let Ok(p) = TsPacket::from_array(block) else {
        return;
    };
    assert!(p.payload_offset() <= PACKET_SIZE);
    assert_eq!(
        p.payload().len(),
        PACKET_SIZE - p.payload_offset().min(PACKET_SIZE)
    );
    if let Some(af) = p.adaptation_field() {
        let _ = (
            af.opcr(),
            af.splice_countdown(),
            af.private_data(),
            af.extension(),
        );
        if let Some(pcr) = af.pcr() {
            let bytes = write_pcr(pcr);
            let mut again = [0u8; PACKET_SIZE];
            let mut b = PacketBuilder::new(p.pid());
            b.pcr = Some(pcr);
            b.build(&[], &mut again);
            assert_eq!(
                TsPacket::from_array(&again).ok().and_then(|q| q.pcr()),
                Some(pcr)
            );
            assert_eq!(bytes.len(), 6);
        }
    }
    // Round trip through the builder.
    let mut b = PacketBuilder::new(p.pid());
    b.pusi = p.payload_unit_start();
    b.cc = p.continuity_counter();
    b.discontinuity = p.discontinuity();
    b.random_access = p.adaptation_field().is_some_and(|af| af.random_access());
    b.pcr = p.pcr();
    let mut out = [0u8; PACKET_SIZE];
    let taken = b.build(p.payload(), &mut out);
    let q = TsPacket::from_array(&out).unwrap_or_else(|e| panic!("builder output invalid: {e}"));
    assert_eq!(q.pid(), p.pid());
    assert_eq!(q.continuity_counter(), p.continuity_counter());
    assert_eq!(q.payload_unit_start(), p.payload_unit_start());
    assert_eq!(q.pcr(), p.pcr());
    assert_eq!(q.discontinuity(), p.discontinuity());
    assert_eq!(q.payload(), p.payload().get(..taken).unwrap_or_default());
}

/// Byte-stream resync: every byte is either in exactly one packet handed
/// out or counted as skipped; packets start with 0x47; a clean stream comes
/// out whole whatever the chunking.
pub fn resync(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let mut r = Resync::new();
    let mut out = Vec::new();
    for c in chunks(seed, body) {
        r.push(c, |p, _| {
            assert_eq!(p[0], 0x47);
            out.extend_from_slice(p);
        });
    }
    r.finish(|p, _| {
        assert_eq!(p[0], 0x47);
        out.extend_from_slice(p);
    });
    let s = r.stats();
    assert_eq!(s.packets as usize * PACKET_SIZE, out.len());
    assert_eq!(out.len() as u64 + s.bytes_skipped, body.len() as u64);
    let clean =
        body.len() % PACKET_SIZE == 0 && body.chunks(PACKET_SIZE).all(|p| p.first() == Some(&0x47));
    if clean {
        assert_eq!(out, body, "a clean stream must pass unchanged");
        assert_eq!(s.sync_losses, 0);
    }
}

/// PSI: sections handed out fit the limits and pass their CRC; PAT and PMT
/// that parse re-encode to sections that parse to the same tables.
pub fn psi(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let mut asm = SectionAssembler::new(Pid::new(0x100));
    for (i, c) in chunks(seed, body).into_iter().enumerate() {
        let c = c.get(..184).unwrap_or(c);
        let pusi = seed & 1 == 0 || i % 3 == 0;
        asm.push(pusi, c, |r| {
            let Ok(section) = r else { return };
            assert!(section.len() <= MAX_SECTION);
            if section.get(1).is_some_and(|b| b & 0x80 != 0) {
                assert_eq!(crc32(section), 0);
            }
            if let Ok(pat) = Pat::parse(section) {
                assert_eq!(Pat::parse(&pat.to_section()).ok(), Some(pat));
            }
            if let Ok(pmt) = Pmt::parse(section) {
                assert_eq!(Pmt::parse(&pmt.to_section()).ok(), Some(pmt));
            }
        });
    }
}

/// PES header: lengths stay within the input and the PES limits;
/// timestamps re-encode to the same value.
pub fn pes(data: &[u8]) {
    match PesHeader::parse(Pid::new(0x100), data) {
        Ok(Some(h)) => {
            assert!(h.header_len <= data.len());
            assert!(h.header_len <= MAX_HEADER);
            for ts in [h.pts, h.dts].into_iter().flatten() {
                assert_eq!(read_timestamp(&write_timestamp(2, ts)), ts);
            }
            // A longer input never changes a complete header.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0xAB; 16]);
            assert_eq!(PesHeader::parse(Pid::new(0x100), &longer), Ok(Some(h)));
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER);
        }
        Err(_) => {}
    }
}

/// NAL scan: the access unit's classification does not depend on how its
/// bytes are split across packets.
pub fn nal(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    for codec in [VideoCodec::H264, VideoCodec::Hevc] {
        let classify = |pieces: Vec<&[u8]>| {
            let mut s = NalScanner::new(codec);
            for p in pieces {
                if let Some(info) = s.push(p) {
                    return info;
                }
            }
            s.finish()
                .unwrap_or_else(|| panic!("finish after no decision must decide"))
        };
        assert_eq!(classify(vec![body]), classify(chunks(seed | 1, body)));
    }
}

/// The whole probe pipeline: never panics; counts agree with each other;
/// the result does not depend on chunking.
pub fn probe(data: &[u8]) {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let run = |pieces: Vec<&[u8]>| {
        let mut p = Prober::new();
        for c in pieces {
            p.push(c);
        }
        p.finish().ok()
    };
    let Some(report) = run(chunks(seed, body)) else {
        return;
    };
    assert!(report.packets * PACKET_SIZE as u64 <= report.bytes);
    assert_eq!(report.bytes, body.len() as u64);
    let per_pid: u64 = report.pids.iter().map(|p| p.cc_errors).sum();
    assert_eq!(per_pid, report.cc_errors);
    let pid_packets: u64 = report.pids.iter().map(|p| p.packets).sum();
    assert!(pid_packets <= report.packets);
    for v in &report.video_streams {
        assert!(v.idr_pts.len() as u64 <= v.frames);
        let in_gops: u64 = v.gop_frames.iter().sum();
        assert_eq!(in_gops + v.frames_before_first_idr, v.frames);
        assert!(v.max_pts_gap_ms >= 0.0);
    }
    assert!(report.duration_s.is_finite() && report.bitrate_bps.is_finite());
    // Whole-input run agrees on what does not depend on chunk boundaries
    // for a stream that never loses sync.
    if report.sync_losses == 0 && report.errors.bytes_skipped == 0 {
        let whole = run(vec![body]).unwrap_or_else(|| panic!("whole input must parse too"));
        assert_eq!(whole.packets, report.packets);
        assert_eq!(whole.cc_errors, report.cc_errors);
        assert_eq!(
            whole.video.as_ref().map(|v| (v.frames, v.idr_pts.clone())),
            report.video.as_ref().map(|v| (v.frames, v.idr_pts.clone()))
        );
    }
}

/// Demux directly over whole packets: every packet is counted once, and
/// every reported access unit or PES start points at a packet already seen,
/// in order per PID.
pub fn demux_packets(data: &[u8]) {
    #[derive(Default)]
    struct Check {
        seen: u64,
        last_pes: Vec<(Pid, u64)>,
    }
    impl Check {
        fn ordered(&mut self, pid: Pid, index: u64) {
            assert!(
                index < self.seen,
                "event for packet {index} before it was pushed"
            );
            match self.last_pes.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, last)) => {
                    assert!(index >= *last, "PID {pid}: index {index} after {last}");
                    *last = index;
                }
                None => self.last_pes.push((pid, index)),
            }
        }
    }
    impl DemuxHandler for Check {
        fn on_packet(&mut self, index: u64, _packet: &TsPacket<'_>) {
            assert!(index + 1 >= self.seen);
            self.seen = index + 1;
        }
        fn on_pes(&mut self, pes: &crate::ts::demux::PesStart) {
            self.ordered(pes.pid, pes.index);
        }
        fn on_access_unit(&mut self, au: &crate::ts::demux::AccessUnit) {
            self.ordered(au.pid, au.index);
        }
    }
    let mut demux = Demux::new();
    let mut check = Check::default();
    let mut n = 0u64;
    for block in data.chunks_exact(PACKET_SIZE) {
        if let Some(b) = block.first_chunk::<PACKET_SIZE>() {
            demux.push_packet(b, &mut check);
            n += 1;
        }
    }
    demux.finish(&mut check);
    let stats = demux.stats();
    assert_eq!(stats.packets, n);
    let per_pid: u64 = demux.pids().map(|(_, c)| c.cc_errors).sum();
    assert_eq!(per_pid, stats.cc_errors);
}

/// RTP receiver over a structured datagram script: no panic; released
/// packets come out with strictly increasing extended sequence numbers that
/// match their RTP sequence numbers; every datagram is accounted for
/// (`datagrams == released + dropped + held`) after every step; after
/// draining, `poll_timeout` never asks for a time already past; following the
/// timers alone empties the reorder buffer; and once everything is flushed
/// the per-packet `lost_before` adds up to `lost`.
///
/// Input: byte 0 picks the configuration (window 1..=16, max_delay,
/// takeover_packets), then records:
///
/// - `0xC0 | t`: advance the clock `t` ms and poll.
/// - `0x80 | t, delta, misc`: advance `t` ms, push a well-formed packet:
///   sequence number = previous + `delta` (as i8; times 251 when `misc` bit 7
///   is set: a jump), SSRC one of three by `misc & 3`, payload type 96
///   instead of 33 when bit 2 is set, CSRCs + extension + padding when bit 5
///   is set, payload length by bits 3..5 (1, 2 or 7 TS packets, or odd),
///   and no poll afterwards when bit 6 is set.
/// - `n` (below 0x80): push the next `n` bytes as a raw datagram.
pub fn rtp(data: &[u8]) {
    use std::time::Duration;

    use bytes::Bytes;

    use crate::rtp::{ReceiverConfig, Released, RtpPacketBuilder, SeqNo, TsReceiver};

    struct Check {
        rx: TsReceiver,
        now: Duration,
        last_index: Option<u64>,
        ssrc: Option<u32>,
        released: u64,
        lost: u64,
    }
    impl Check {
        fn take(&mut self, r: Released) {
            assert!(
                self.last_index.is_none_or(|l| r.index > l),
                "index {} after {:?}",
                r.index,
                self.last_index
            );
            assert_eq!(r.index as u16, r.packet.seq().value());
            if !r.new_source {
                assert_eq!(Some(r.packet.ssrc()), self.ssrc, "SSRC changed silently");
            }
            self.ssrc = Some(r.packet.ssrc());
            self.last_index = Some(r.index);
            self.released += 1;
            self.lost += r.lost_before;
        }
        fn drain(&mut self) {
            while let Some(r) = self.rx.poll_packet(self.now) {
                self.take(r);
            }
            if let Some(t) = self.rx.poll_timeout() {
                assert!(t > self.now, "timeout {t:?} already due at {:?}", self.now);
            }
            self.account();
        }
        fn account(&self) {
            let s = self.rx.stats();
            assert_eq!(s.released, self.released);
            assert_eq!(s.datagrams, s.released + s.dropped() + s.held, "{s:?}");
        }
    }

    let Some((&c, mut rest)) = data.split_first() else {
        return;
    };
    let config = ReceiverConfig {
        window: 1 + u16::from(c & 0x0F),
        max_delay: Duration::from_millis(5 + 20 * u64::from((c >> 4) & 3)),
        max_dropout: 64,
        max_misorder: 32,
        takeover_packets: 1 + u16::from(c >> 6),
        takeover_silence: Duration::from_millis(30),
        ..ReceiverConfig::default()
    };
    let rx = TsReceiver::new(config).unwrap_or_else(|e| panic!("harness config: {e}"));
    let mut check = Check {
        rx,
        now: Duration::ZERO,
        last_index: None,
        ssrc: None,
        released: 0,
        lost: 0,
    };
    let ts = {
        let mut ts = [0xFFu8; 7 * PACKET_SIZE];
        for p in ts.chunks_mut(PACKET_SIZE) {
            if let Some(b) = p.first_mut() {
                *b = 0x47;
            }
        }
        ts
    };
    let mut seq = SeqNo::new(0);
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let ms = Duration::from_millis(u64::from(tag & 0x3F));
        if tag >= 0xC0 {
            check.now += ms;
            check.drain();
        } else if tag >= 0x80 {
            let Some((&[delta, misc], tail)) = rest.split_first_chunk::<2>() else {
                break;
            };
            rest = tail;
            check.now += ms;
            let step = i16::from(delta as i8) * if misc & 0x80 != 0 { 251 } else { 1 };
            seq = seq.add(step as u16);
            let mut b = RtpPacketBuilder::new(seq, [0xA, 0xA, 0xB, 0xC][usize::from(misc & 3)]);
            if misc & 0x04 != 0 {
                b.payload_type = 96;
            }
            if misc & 0x20 != 0 {
                b.csrcs = vec![1, 2];
                b.extension = Some((0xBEDE, vec![misc; 5]));
                b.padding = 1 + (misc & 7);
            }
            let len = match (misc >> 3) & 3 {
                0 => PACKET_SIZE,
                1 => 2 * PACKET_SIZE,
                2 => 7 * PACKET_SIZE,
                _ => usize::from(delta),
            };
            check
                .rx
                .push(check.now, b.build(ts.get(..len).unwrap_or(&ts)));
            if misc & 0x40 == 0 {
                check.drain();
            } else {
                check.account();
            }
        } else {
            let n = usize::from(tag).min(rest.len());
            let (datagram, tail) = rest.split_at(n);
            rest = tail;
            check.rx.push(check.now, Bytes::copy_from_slice(datagram));
            check.drain();
        }
    }
    // Following the timers alone releases everything in the reorder buffer;
    // each timer releases a packet or completes a takeover.
    let mut timers = 0u64;
    while let Some(t) = check.rx.poll_timeout() {
        check.now = check.now.max(t);
        check.drain();
        timers += 1;
        assert!(
            timers <= 2 * check.rx.stats().datagrams + 2,
            "timers do not make progress"
        );
    }
    check.rx.flush();
    check.drain();
    assert_eq!(check.lost, check.rx.stats().lost);
}

/// The per-stream ring and fan-out ([`crate::ring::StreamBuffer`]) with
/// fuzzer-chosen chunking (first byte), ring and queue sizes (second) and
/// consumer pace (third): the ring stays under its hard cap and every queue
/// under its hard limit after every push; what a consumer gets is the
/// stream's own packets in order (continuity counters aside) plus PAT/PMT at
/// its starts; and it sees no more continuity errors than the stream had.
pub fn stream_buffer(data: &[u8]) {
    use crate::ring::{QueueLimits, RingLimits, StreamBuffer, StreamConfig};
    use crate::ts::psi::{Pat, Pmt};
    use bytes::Bytes;

    #[derive(Default)]
    struct PsiPids(Vec<Pid>);
    impl DemuxHandler for PsiPids {
        fn on_pat(&mut self, _: u64, pat: &Pat, _: &[u8]) {
            self.0.extend(pat.entries.iter().map(|e| e.pid));
        }
        fn on_pmt(&mut self, _: u64, pid: Pid, _: &Pmt, _: &[u8]) {
            self.0.push(pid);
        }
    }
    fn pid_of(packet: &[u8]) -> Pid {
        let b1 = packet.get(1).copied().unwrap_or(0);
        let b2 = packet.get(2).copied().unwrap_or(0);
        Pid::new(u16::from(b1 & 0x1F) << 8 | u16::from(b2))
    }
    /// Continuity errors as a receiver counts them, without the demux's
    /// resets when a PID leaves the PSI (which happen at other places in a
    /// consumer's stream, where PAT and PMT are inserted).
    fn cc_errors<'a>(packets: impl Iterator<Item = &'a [u8]>) -> usize {
        let mut tracker = CcTracker::new();
        packets
            .filter_map(|p| TsPacket::new(p).ok())
            .filter(|p| !p.transport_error() && tracker.check(p).is_error())
            .count()
    }
    fn without_cc(packet: &[u8]) -> impl Iterator<Item = u8> + '_ {
        packet
            .iter()
            .enumerate()
            .map(|(i, &b)| if i == 3 { b & 0xF0 } else { b })
    }

    let Some((&[chunking, limits, pace], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let budget = (8 + usize::from(limits & 0x1F) * 8) * PACKET_SIZE;
    let hard_cap = budget * (1 + usize::from(limits >> 5) % 4);
    let config = StreamConfig {
        ring: RingLimits { budget, hard_cap },
        ..StreamConfig::default()
    };
    let Ok(mut stream) = StreamBuffer::new(config) else {
        panic!("ring limits {budget}/{hard_cap} are valid");
    };
    let capacity = (4 + usize::from(pace & 0x0F) * 6) * PACKET_SIZE;
    let queue = QueueLimits {
        capacity,
        hard_limit: 2 * capacity,
    };
    let whole = Bytes::copy_from_slice(body);
    let pieces = chunks(chunking, body);
    let mut consumers = vec![(stream.attach(queue), Vec::new())];
    // xorshift32: the consumers' pace, reproducible from the input.
    let mut state = u32::from(pace) << 8 | u32::from(limits) | 1;
    let mut at = 0;
    for (n, piece) in pieces.iter().enumerate() {
        stream.push(whole.slice(at..at + piece.len()));
        at += piece.len();
        assert!(stream.ring().bytes() <= hard_cap, "ring over its hard cap");
        if n == pieces.len() / 3 || n == pieces.len() / 2 {
            consumers.push((stream.attach(queue), Vec::new()));
        }
        for (id, out) in &mut consumers {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let max = (state as usize % (3 * piece.len().max(PACKET_SIZE))) & !0x3;
            stream.take(*id, max, out);
            let queued = stream.consumer(*id).map_or(0, |q| q.bytes());
            assert!(queued <= queue.hard_limit, "queue over its hard limit");
        }
    }
    stream.finish();

    // What the stream stored, in order, and which PIDs carry PSI.
    let mut resync = Resync::new();
    let mut stored: Vec<[u8; PACKET_SIZE]> = Vec::new();
    for piece in &pieces {
        resync.push(piece, |p, _| stored.push(*p));
    }
    resync.finish(|p, _| stored.push(*p));
    let mut psi = PsiPids::default();
    let mut demux = Demux::new();
    for p in &stored {
        demux.push_packet(p, &mut psi);
    }
    psi.0.push(Pid::PAT);
    let source_errors = cc_errors(stored.iter().map(|p| &p[..]));

    for (id, out) in &mut consumers {
        stream.take(*id, usize::MAX, out);
        let stats = stream.consumer(*id).map(|q| q.stats()).unwrap_or_default();
        assert_eq!(stats.delivered_packets, out.len() as u64);
        let mut source = stored.iter().filter(|p| !psi.0.contains(&pid_of(&p[..])));
        for p in out.iter() {
            assert_eq!(p.len(), PACKET_SIZE, "a consumer got a short packet");
            if psi.0.contains(&pid_of(p)) {
                continue;
            }
            assert!(
                source.any(|s| without_cc(s).eq(without_cc(p))),
                "a consumer got a packet not from the stream, or out of order"
            );
        }
        assert!(
            cc_errors(out.iter().map(|p| &p[..])) <= source_errors,
            "a consumer sees continuity errors the stream did not have"
        );
    }
}

/// The output splicer ([`crate::splice::Splicer`]) over two sources. The
/// input is a script of records, each a control byte then, for a packet,
/// 188 bytes: control `0x80 | s` asks for a switch to source `s & 1`,
/// `0x40 | s` removes source `s & 1`, anything else pushes the next 188
/// bytes as a packet of source `c & 1` after `c >> 1 & 0x0F` ms. Whatever
/// the sources send, the output is whole packets with the sync byte, and
/// on every PID the continuity counter runs on (§2.4.3.3: +1 per packet
/// with payload, repeated by packets without) across every switch.
pub fn splice(data: &[u8]) {
    use crate::splice::{SourceId, SpliceSettings, Splicer};
    use bytes::Bytes;
    use std::time::{Duration, Instant};

    let whole = Bytes::copy_from_slice(data);
    let settings = SpliceSettings {
        hold_limit: 64 * PACKET_SIZE,
        ..SpliceSettings::default()
    };
    let mut splicer = Splicer::new(settings);
    let mut now = Instant::now();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&control) = data.get(at) {
        at += 1;
        let source = SourceId(u32::from(control & 1));
        if control & 0x80 != 0 {
            splicer.switch_to(now, source);
        } else if control & 0x40 != 0 {
            splicer.remove_source(source);
        } else {
            let end = (at + PACKET_SIZE).min(data.len());
            now += Duration::from_millis(u64::from(control >> 1 & 0x0F));
            splicer.push(now, source, whole.slice(at..end), &mut out);
            at = end;
        }
        while splicer.poll_event().is_some() {}
    }
    // Per PID: the counter of the last packet with payload.
    let mut last = vec![None::<u8>; Pid::COUNT];
    for p in &out {
        assert_eq!(p.len(), PACKET_SIZE, "the output has a short packet");
        let Ok(packet) = TsPacket::new(p) else {
            panic!("the output has a malformed packet");
        };
        let cc = packet.continuity_counter().value();
        let Some(slot) = last.get_mut(packet.pid().index()) else {
            continue;
        };
        match (*slot, packet.has_payload()) {
            (Some(prev), true) => {
                assert_eq!(cc, (prev + 1) & 0x0F, "counter jumps on {}", packet.pid())
            }
            (Some(prev), false) => assert_eq!(
                cc,
                prev,
                "counter moves without payload on {}",
                packet.pid()
            ),
            (None, _) => {}
        }
        if packet.has_payload() {
            *slot = Some(cc);
        }
    }
    let stats = splicer.stats();
    assert_eq!(stats.packets_out, out.len() as u64);
}

/// The SRT gate ([`crate::ingest::srt::gate`]): reading never panics, a
/// conclusion's canonical form is no longer than the datagram, reads back
/// the same and is a fixed point, and every datagram the gate lets through
/// (canonical conclusions, established-connection control packets, data)
/// parses in srt-protocol without a panic — the gate's promise — and a NAK
/// it passes decompresses to a bounded list. The same
/// bytes also go through the stream id and key material parsers.
pub fn srt_gate(data: &[u8]) {
    use crate::ingest::srt::gate::{self, Handshake, Kind};
    use crate::ingest::srt::streamid::StreamRequest;
    use bytes::Bytes;
    use srt_protocol::packet::{ControlPacket, ControlTypes, Packet};

    let parse_in_srt_protocol = |datagram: &Bytes| {
        let _ = Packet::parse(&mut datagram.clone(), false);
        let _ = Packet::parse(&mut datagram.clone(), true);
    };
    match Kind::read(data) {
        Err(_) => assert!(data.len() < gate::HEADER_LEN),
        Ok(kind) if kind.is_handshake() => {
            if let Ok(hs) = Handshake::read(data)
                && !hs.is_induction()
            {
                let canonical = hs.canonical(data);
                assert!(canonical.len() <= data.len());
                let Ok(again) = Handshake::read(&canonical) else {
                    panic!("a canonical conclusion does not read back");
                };
                assert_eq!(again.stream_id, hs.stream_id);
                assert_eq!(again.key_material, hs.key_material);
                assert_eq!(again.max_latency_ms, hs.max_latency_ms);
                assert_eq!(again.socket_id, hs.socket_id);
                assert_eq!(again.unsupported, None);
                assert_eq!(again.canonical(&canonical), canonical);
                parse_in_srt_protocol(&canonical);
            }
        }
        Ok(Kind::Control { ty, subtype, .. }) => {
            if gate::check_established_control(data, ty, subtype).is_ok() {
                let datagram = Bytes::copy_from_slice(data);
                parse_in_srt_protocol(&datagram);
                // A NAK the gate passes lists a bounded number of sequence
                // numbers as srt-protocol's sender will walk them (P19).
                if let Ok(Packet::Control(ControlPacket {
                    control_type: ControlTypes::Nak(losses),
                    ..
                })) = Packet::parse(&mut datagram.clone(), false)
                {
                    let max = gate::MAX_NAK_SEQUENCE_NUMBERS as usize;
                    assert!(losses.iter_decompressed().take(max + 1).count() <= max);
                }
            }
        }
        Ok(Kind::Data { .. }) => parse_in_srt_protocol(&Bytes::copy_from_slice(data)),
    }
    if let Ok(km) = gate::check_key_material(data) {
        assert!(matches!(km.key_len, 16 | 24 | 32));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(request) = StreamRequest::parse(text)
    {
        assert!(!request.resource.as_str().is_empty());
    }
}

/// The SRT endpoint ([`crate::ingest::srt::Endpoint`]) over a datagram
/// script, with three connections already established: `A` (10.0.0.2:5000,
/// publisher of `live/a`), `B` (10.0.0.3:5000, player of it) and `C`
/// (10.0.0.5:5000, an AES-128 publisher of `live/c` handshaken by
/// srt-protocol's own caller, so key refreshes and decryption are reached).
///
/// Script records, until the input ends:
/// - `0xC0..=0xFF`: advance the clock by `(tag & 0x3F) × 4` ms and run the
///   timers that are due.
/// - `0x80..=0xBF`: the next byte `n`, then `n` bytes sent to the player.
/// - `0x00..=0x7F`: a datagram: two bytes of length (big-endian, at most
///   1500), then the bytes. `tag & 3` picks the source (`A`, `B`, a
///   stranger, `A`'s IP on another port), `tag & 0x20` makes it `C`.
///   `tag & 0x04` addresses it to `A`'s connection (`B`'s with `tag & 0x10`,
///   `C`'s with `tag & 0x20`); `tag & 0x08` puts the right
///   induction cookie in a conclusion, so that the fuzzer reaches the
///   handshake code behind the cookie check.
///
/// Invariants: no panic is ever caught (the gate stops every packet that
/// would panic srt-protocol), datagrams sent are 16 to 1500 bytes, events
/// only name open connections and each closes once, the table stays within
/// its caps and its indexes agree, and once the input stops every
/// connection times out and the tables are empty.
pub fn srt_endpoint(data: &[u8]) {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use crate::ingest::srt::cookie::CookieJar;
    use crate::ingest::srt::craft::Conclusion;
    use crate::ingest::srt::{ConnId, Endpoint, EndpointSettings, Event};

    const KEY: [u8; 16] = [0x5A; 16];
    let a = SocketAddr::from(([10, 0, 0, 2], 5000));
    let b = SocketAddr::from(([10, 0, 0, 3], 5000));
    let stranger = SocketAddr::from(([10, 0, 0, 4], 5000));
    let a_other_port = SocketAddr::from(([10, 0, 0, 2], 5001));
    let c = SocketAddr::from(([10, 0, 0, 5], 5000));
    const C_PASSPHRASE: &str = "0123456789abcdef";

    let start = Instant::now();
    let mut now = start;
    let Ok(config) = crate::config::parse(
        "[[stream]]\nid = \"live/c\"\npassphrase = \"0123456789abcdef\"\n",
        "harness.toml",
    ) else {
        panic!("the harness's config parses");
    };
    let config = Arc::new(config);
    let mut settings = EndpointSettings::from_config(&config);
    settings.max_connections = 7;
    settings.max_connections_per_ip = 3;
    let mut endpoint = Endpoint::new(now, config, settings.clone(), KEY);
    let cookies = CookieJar::new(KEY, start);
    let mut open: HashSet<ConnId> = HashSet::new();

    let settle = |endpoint: &mut Endpoint, open: &mut HashSet<ConnId>| {
        while let Some((_, datagram)) = endpoint.poll_transmit() {
            assert!(
                (16..=1500).contains(&datagram.len()),
                "sent a {}-byte datagram",
                datagram.len()
            );
        }
        while let Some(event) = endpoint.poll_event() {
            match event {
                Event::Connected { conn, .. } => assert!(open.insert(conn), "{conn:?} twice"),
                Event::Data { conn, .. } => assert!(open.contains(&conn), "data of {conn:?}"),
                Event::Closed { conn, .. } => assert!(open.remove(&conn), "{conn:?} closed"),
                Event::Rejected { .. } => {}
            }
        }
        assert_eq!(
            endpoint.counters().panics,
            0,
            "a panic reached srt-protocol"
        );
        let [conns, by_peer, per_ip, _] = endpoint.table_sizes();
        assert_eq!(conns, open.len());
        assert_eq!(conns, by_peer);
        assert!(per_ip <= conns && conns <= settings.max_connections);
    };

    // Establish A and B by hand.
    let establish = |endpoint: &mut Endpoint, from: SocketAddr, socket_id: u32, sid: &str| {
        let cookie = cookies.issue(now, from, socket_id);
        let conclusion = Conclusion::new(socket_id, cookie).stream_id(sid).build();
        endpoint.handle_datagram(now, from, Bytes::from(conclusion));
        let mut id = None;
        while let Some(event) = endpoint.poll_event() {
            if let Event::Connected { conn, .. } = event {
                id = Some(conn);
            }
        }
        while endpoint.poll_transmit().is_some() {}
        id
    };
    let (Some(a_id), Some(b_id)) = (
        establish(&mut endpoint, a, 0x0A0A, "live/a"),
        establish(&mut endpoint, b, 0x0B0B, "#!::r=live/a,m=request"),
    ) else {
        panic!("the harness's own handshakes failed");
    };
    open.insert(a_id);
    open.insert(b_id);
    // C: an AES-128 publisher, handshaken by srt-protocol's own caller so
    // that its key material is real.
    let c_id = {
        use srt_protocol::packet::{Packet, SeqNumber, SocketId};
        use srt_protocol::protocol::pending_connection::ConnectionResult;
        use srt_protocol::protocol::pending_connection::connect::Connect;
        use srt_protocol::settings::{ConnInitSettings, KeySettings, KeySize, Passphrase};

        let serialize = |packet: &Packet| {
            let mut out = bytes::BytesMut::new();
            packet.serialize(&mut out);
            out.freeze()
        };
        let Ok(passphrase) = Passphrase::try_from(C_PASSPHRASE.to_string()) else {
            panic!("a valid passphrase");
        };
        let settings = ConnInitSettings {
            local_sockid: SocketId(0x0C0C),
            key_settings: Some(KeySettings {
                key_size: KeySize::AES128,
                passphrase,
            }),
            ..ConnInitSettings::default()
        };
        let listener = SocketAddr::from(([10, 0, 0, 1], 9000));
        let mut connect = Connect::new(
            listener,
            c.ip(),
            settings,
            Some("live/c".into()),
            SeqNumber::new_truncate(1),
        );
        let ConnectionResult::SendPacket((induction, _)) = connect.handle_tick(now) else {
            panic!("the caller starts with an induction");
        };
        endpoint.handle_datagram(now, c, serialize(&induction));
        let Some((_, reply)) = endpoint.poll_transmit() else {
            panic!("the induction is answered");
        };
        let Ok(reply) = Packet::parse(&mut reply.clone(), false) else {
            panic!("our induction answer parses");
        };
        let ConnectionResult::SendPacket((conclusion, _)) =
            connect.handle_packet(Ok((reply, listener)), now)
        else {
            panic!("the caller concludes");
        };
        endpoint.handle_datagram(now, c, serialize(&conclusion));
        while endpoint.poll_transmit().is_some() {}
        let connected = std::iter::from_fn(|| endpoint.poll_event()).find_map(|e| match e {
            Event::Connected { conn, .. } => Some(conn),
            _ => None,
        });
        let Some(id) = connected else {
            panic!("the encrypted caller is accepted");
        };
        id
    };
    open.insert(c_id);

    let mut rest = data;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        match tag {
            0xC0..=0xFF => {
                now += Duration::from_millis(u64::from(tag & 0x3F) * 4);
                if endpoint.poll_timeout().is_some_and(|t| t <= now) {
                    endpoint.handle_timeout(now);
                }
            }
            0x80..=0xBF => {
                let Some((&n, tail)) = rest.split_first() else {
                    break;
                };
                let n = usize::from(n).min(tail.len());
                let (payload, tail) = tail.split_at(n);
                rest = tail;
                endpoint.send(now, b_id, Bytes::copy_from_slice(payload));
            }
            _ => {
                let Some((&[hi, lo], tail)) = rest.split_first_chunk::<2>() else {
                    break;
                };
                let n = usize::from(u16::from_be_bytes([hi, lo]))
                    .min(1500)
                    .min(tail.len());
                let (datagram, tail) = tail.split_at(n);
                rest = tail;
                let from = if tag & 0x20 != 0 {
                    c
                } else {
                    [a, b, stranger, a_other_port][usize::from(tag & 3)]
                };
                let mut datagram = datagram.to_vec();
                if tag & 0x04 != 0
                    && let Some(dest) = datagram.get_mut(12..16)
                {
                    let to = match (tag & 0x20 != 0, tag & 0x10 != 0) {
                        (true, _) => c_id,
                        (false, true) => b_id,
                        (false, false) => a_id,
                    };
                    dest.copy_from_slice(&to.0.to_be_bytes());
                }
                if tag & 0x08 != 0 && datagram.len() >= 64 {
                    let socket_id = datagram
                        .get(40..44)
                        .and_then(|w| w.try_into().ok())
                        .map_or(0, u32::from_be_bytes);
                    let cookie = cookies.issue(now, from, socket_id);
                    if let Some(field) = datagram.get_mut(44..48) {
                        field.copy_from_slice(&cookie.to_be_bytes());
                    }
                }
                endpoint.handle_datagram(now, from, Bytes::from(datagram));
            }
        }
        settle(&mut endpoint, &mut open);
    }
    // Silence: every connection idles out (5 s) and the tables empty.
    let end = now + Duration::from_secs(20);
    while let Some(t) = endpoint.poll_timeout() {
        assert!(t <= end, "a connection outlives its idle timeout");
        now = now.max(t).max(now + Duration::from_millis(1));
        endpoint.handle_timeout(now);
        settle(&mut endpoint, &mut open);
    }
    assert_eq!(endpoint.table_sizes(), [0; 4]);
    assert!(open.is_empty());
}

/// ffmpeg `-progress` parser over stderr bytes: never panics, holds at most
/// [`crate::progress::MAX_LINE`] bytes of a line, accounts for every line,
/// and hands out the same events whatever the chunking.
pub fn progress(data: &[u8]) {
    use crate::progress::{MAX_LINE, ProgressEvent, ProgressParser};
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let run = |pieces: Vec<&[u8]>| {
        let mut p = ProgressParser::new();
        let mut events = Vec::new();
        for c in pieces {
            p.push(c);
            while let Some(e) = p.poll_event() {
                events.push(e);
            }
        }
        p.finish();
        while let Some(e) = p.poll_event() {
            events.push(e);
        }
        (events, p.stats())
    };
    let (whole, whole_stats) = run(vec![body]);
    let (split, split_stats) = run(chunks(seed, body));
    let s = split_stats;
    assert_eq!(s.bytes, body.len() as u64);
    assert_eq!(s.lines, s.progress_lines + s.log_lines);
    assert!(s.blocks <= s.progress_lines);
    assert!(s.truncated_lines <= s.log_lines);
    for e in &split {
        match e {
            ProgressEvent::Log(l) => {
                // Lossy UTF-8 may grow each kept byte to 3 bytes (U+FFFD).
                assert!(l.text.len() <= 3 * MAX_LINE);
                assert!(!l.text.contains(['\n', '\r']));
            }
            ProgressEvent::Progress(b) => {
                assert!(b.speed.is_none_or(|x| x.is_finite() && x >= 0.0));
                assert!(b.fps.is_none_or(|x| x.is_finite() && x >= 0.0));
                assert!(b.bitrate_kbps.is_none_or(|x| x.is_finite() && x >= 0.0));
            }
        }
    }
    if whole_stats.events_dropped == 0 && s.events_dropped == 0 {
        assert_eq!(whole, split, "chunking changed the events");
    }
    assert_eq!(whole_stats.lines, s.lines);
    assert_eq!(whole_stats.blocks, s.blocks);
}

/// Encoder health scorer over an observation script, plus the `/proc`
/// text parsers over the same bytes: never panics; transitions chain
/// (`from` is the previous `to`), change the state, never leave Failed, and
/// happen at the `now` of the call; `poll_timeout` is never in the past of
/// a state that needs one.
///
/// Script: records of 3 bytes `[op, a, b]`; the clock advances by
/// `a` ms before each record (`op & 0x80` multiplies that by 64), then
/// `op & 0x0F` picks the observation: input bytes, input frame, stdout,
/// output frame, progress, /proc sample (state from `b`), queue depth,
/// exit, timeout. PTS advance by `b` × 100 ticks (frames) from a start near
/// the 33-bit wrap.
pub fn health(data: &[u8]) {
    use crate::health::{ExitStatus, HealthScorer, HealthSettings, HealthState, ProcStat};
    use crate::progress::Progress;
    use crate::ts::Timestamp;
    use std::time::{Duration, Instant};

    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::health::parse_proc_stat(text);
        let _ = crate::placement::parse_host_stat(text);
    }
    let t0 = Instant::now();
    let mut now = t0;
    let mut h = HealthScorer::new(HealthSettings::default(), t0);
    let mut state = HealthState::Healthy;
    let (mut pts_in, mut pts_out) = (
        Timestamp::new((1 << 33) - 9000),
        Timestamp::new((1 << 33) - 9000),
    );
    let mut ticks = 0u64;
    let mut out_us = 0i64;
    for rec in data.chunks_exact(3) {
        let &[op, a, b] = rec else { continue };
        let step = u64::from(a) * if op & 0x80 != 0 { 64 } else { 1 };
        now += Duration::from_millis(step);
        match op & 0x0F {
            0 => h.on_input(now, usize::from(b) * 100),
            1 => {
                pts_in = pts_in.add_ticks(i64::from(b) * 100);
                h.on_input_frame(now, pts_in);
            }
            2 => h.on_stdout(now, usize::from(b) * 50),
            3 => {
                pts_out = pts_out.add_ticks(i64::from(b) * 100);
                h.on_output_frame(now, pts_out);
            }
            4 => {
                out_us += i64::from(b) * 10_000 - 500_000;
                let block = Progress {
                    out_time_us: Some(out_us),
                    ..Progress::default()
                };
                h.on_progress(now, &block);
            }
            5 => {
                ticks += u64::from(b);
                let state = ['R', 'S', 'T', 'Z', 'D', 't', 'X', 'I'][usize::from(b % 8)];
                let stat = ProcStat {
                    pid: 1,
                    comm: "ffmpeg".into(),
                    state,
                    utime: ticks,
                    stime: 0,
                    num_threads: 1,
                    starttime: 0,
                };
                h.on_proc_sample(now, &stat);
            }
            6 => h.on_queue_depth(now, u64::from(b) << 14),
            7 if b == 0x7F => h.on_exit(
                now,
                ExitStatus {
                    code: Some(1),
                    signal: None,
                },
            ),
            _ => {
                if let Some(d) = h.poll_timeout() {
                    now = now.max(d);
                    h.handle_timeout(now);
                }
            }
        }
        while let Some(e) = h.poll_event() {
            assert_eq!(e.from, state, "transitions chain");
            assert_ne!(e.from, e.to, "a transition changes the state");
            assert_ne!(e.from, HealthState::Failed, "Failed is final");
            assert_eq!(e.at, now, "events happen at the call's now");
            state = e.to;
        }
        assert_eq!(h.state(), state);
        if state == HealthState::Failed {
            assert_eq!(h.poll_timeout(), None);
        }
        assert!(h.speed().is_none_or(f64::is_finite));
        assert!(h.cpu_share().is_none_or(|c| c.is_finite() && c >= 0.0));
    }
}
