//! Byte stream → transport packets, recovering sync after garbage or loss.
//!
//! Input may come from a file, a pipe or datagrams, in chunks of any size, so
//! a packet can straddle two chunks and a chunk can start or end mid-packet.
//! Sync is acquired when a 0x47 byte is followed by [`CONFIRM_SYNCS`] − 1
//! more at 188-byte intervals (the usual receiver rule: one 0x47 alone is
//! common inside payloads). Once locked, every packet must start with 0x47;
//! a packet that does not is a *sync loss*: the hunt restarts from the byte
//! after the last good packet, and skipped bytes are counted.
//!
//! Packets that lie wholly inside a pushed chunk are handed out as slices of
//! it (zero copy); only a packet split across chunks is assembled in a
//! 188-byte carry buffer. [`Resync::push_runs`] hands out the packets of a
//! chunk in runs (`&[[u8; 188]]`), so that a consumer loops over a run in
//! one call instead of being called per packet.

use bytes::Bytes;
use memchr::memchr_iter;

use super::packet::{PACKET_SIZE, SYNC_BYTE};

/// Sync bytes at 188-byte spacing needed to (re)acquire lock.
pub const CONFIRM_SYNCS: usize = 3;

/// Where a packet (or the first packet of a run) handed out by [`Resync`]
/// lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// At this offset in the chunk just pushed.
    Chunk(usize),
    /// Assembled from bytes of more than one chunk.
    Carried,
}

impl Origin {
    /// The origin of the packet `n` packets after this one in a run.
    #[inline]
    fn nth(self, n: usize) -> Origin {
        match self {
            Origin::Chunk(at) => Origin::Chunk(at + n * PACKET_SIZE),
            Origin::Carried => Origin::Carried,
        }
    }
}

/// Counters kept by [`Resync`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResyncStats {
    /// Times lock was lost after it had been acquired.
    pub sync_losses: u64,
    /// Bytes discarded while hunting for sync (including a truncated tail).
    pub bytes_skipped: u64,
    /// Packets handed out.
    pub packets: u64,
    /// Whether the final packet was cut short (seen by [`Resync::finish`]).
    pub truncated_tail: bool,
}

/// A packetizer for a byte stream; see the module docs.
#[derive(Debug, Default)]
pub struct Resync {
    locked: bool,
    /// Bytes from earlier chunks not yet handed out: while locked, less than
    /// one packet; while hunting, less than `CONFIRM_SYNCS` packets.
    pending: Vec<u8>,
    stats: ResyncStats,
}

impl Resync {
    pub fn new() -> Resync {
        Resync::default()
    }

    pub fn stats(&self) -> ResyncStats {
        self.stats
    }

    /// Whether the stream is currently locked to packet boundaries.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Feeds a chunk; calls `emit` for every complete packet, in order.
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&[u8; PACKET_SIZE], Origin)) {
        self.push_runs(chunk, |run, origin| {
            for (n, packet) in run.iter().enumerate() {
                emit(packet, origin.nth(n));
            }
        });
    }

    /// Like [`Resync::push`], handing out the packets as runs: `emit` gets
    /// consecutive packets and the origin of the first. A run of the chunk
    /// itself is a slice of it (zero copy); a packet assembled from several
    /// chunks comes alone.
    pub fn push_runs(&mut self, chunk: &[u8], mut emit: impl FnMut(&[[u8; PACKET_SIZE]], Origin)) {
        // The usual chunk while locked: whole packets from its first byte,
        // each starting with the sync byte, and so does the cut-short tail
        // if any. (What `push_any` would do, without its bookkeeping.)
        if self.locked && self.pending.is_empty() {
            let (packets, tail) = chunk.as_chunks::<PACKET_SIZE>();
            let synced = packets
                .iter()
                .fold(true, |synced, p| synced & (p[0] == SYNC_BYTE));
            if synced && tail.first().is_none_or(|&b| b == SYNC_BYTE) {
                if !packets.is_empty() {
                    self.stats.packets += packets.len() as u64;
                    emit(packets, Origin::Chunk(0));
                }
                self.pending.extend_from_slice(tail);
                return;
            }
        }
        self.push_any(chunk, &mut emit);
    }

    /// [`Resync::push_runs`] for any chunk.
    fn push_any(&mut self, chunk: &[u8], mut emit: impl FnMut(&[[u8; PACKET_SIZE]], Origin)) {
        let mut pos = 0;
        if !self.pending.is_empty() {
            if self.locked {
                let need = PACKET_SIZE - self.pending.len();
                let Some(head) = chunk.get(..need) else {
                    self.pending.extend_from_slice(chunk);
                    return;
                };
                self.pending.extend_from_slice(head);
                pos = need;
                if let Ok(packet) = <&[u8; PACKET_SIZE]>::try_from(self.pending.as_slice())
                    && packet[0] == SYNC_BYTE
                {
                    self.stats.packets += 1;
                    emit(std::slice::from_ref(packet), Origin::Carried);
                    self.pending.clear();
                } else {
                    // The carried packet is bad: hunt inside it and the chunk.
                    self.lose_sync();
                    self.pending.drain(..1);
                    self.stats.bytes_skipped += 1;
                    return self.hunt_pending(chunk, need, &mut emit);
                }
            } else {
                return self.hunt_pending(chunk, 0, &mut emit);
            }
        }
        self.scan(chunk, pos, &mut emit);
    }

    /// Like [`Resync::push`], handing out packets as `Bytes` slices of `chunk`
    /// (zero copy) or, for a packet split across chunks, a fresh 188-byte copy.
    pub fn push_bytes(&mut self, chunk: &Bytes, mut emit: impl FnMut(Bytes)) {
        self.push(chunk, |packet, origin| match origin {
            Origin::Chunk(at) => emit(chunk.slice(at..at + PACKET_SIZE)),
            Origin::Carried => emit(Bytes::copy_from_slice(packet)),
        });
    }

    /// Ends the stream: packets still pending that were never confirmed by
    /// enough following sync bytes are handed out if they start with 0x47;
    /// a cut-short final packet is counted as skipped.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8; PACKET_SIZE], Origin)) {
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        if !self.locked {
            // Too short to confirm the usual way. Accept the first sync byte
            // whose following packets, as far as they go, all start with a
            // sync byte, if that is at least two of them, or if the data is
            // exactly whole packets from its first byte (a lone packet). A
            // stray 0x47 in other data is not a packet.
            let whole = pending.len().is_multiple_of(PACKET_SIZE);
            at = memchr_iter(SYNC_BYTE, &pending)
                .find(|&p| {
                    let syncs: Vec<bool> = (p..pending.len())
                        .step_by(PACKET_SIZE)
                        .map(|q| pending.get(q) == Some(&SYNC_BYTE))
                        .collect();
                    syncs.iter().all(|s| *s) && (syncs.len() >= 2 || (p == 0 && whole))
                })
                .unwrap_or(pending.len());
            self.stats.bytes_skipped += at as u64;
        }
        while let Some(packet) = pending
            .get(at..at + PACKET_SIZE)
            .and_then(|b| <&[u8; PACKET_SIZE]>::try_from(b).ok())
        {
            if packet[0] != SYNC_BYTE {
                break;
            }
            self.stats.packets += 1;
            emit(packet, Origin::Carried);
            at += PACKET_SIZE;
        }
        if at < pending.len() {
            self.stats.truncated_tail = true;
            self.stats.bytes_skipped += (pending.len() - at) as u64;
        }
    }

    fn lose_sync(&mut self) {
        if self.locked {
            self.locked = false;
            self.stats.sync_losses += 1;
        }
    }

    /// Hunting with bytes pending: join them with the chunk from `from`, hunt
    /// in the joined buffer, and map packets back to chunk offsets when they
    /// lie wholly inside the chunk.
    fn hunt_pending(
        &mut self,
        chunk: &[u8],
        from: usize,
        emit: &mut impl FnMut(&[[u8; PACKET_SIZE]], Origin),
    ) {
        let rest = chunk.get(from..).unwrap_or_default();
        let carried = self.pending.len();
        // Only a few packets' worth of the chunk is needed to find sync;
        // after that the fast path takes over on the chunk itself.
        let window = rest.len().min(CONFIRM_SYNCS * PACKET_SIZE * 2);
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(rest.get(..window).unwrap_or_default());
        match find_sync(&joined, 0) {
            Hunt::Locked(at) => {
                self.stats.bytes_skipped += at as u64;
                self.locked = true;
                let mut p = at;
                // Packets that start in the carried part are emitted from
                // `joined`; the first packet starting in the chunk hands over
                // to the zero-copy scan.
                while p < carried {
                    let Some(packet) = joined
                        .get(p..p + PACKET_SIZE)
                        .and_then(|b| <&[u8; PACKET_SIZE]>::try_from(b).ok())
                    else {
                        break;
                    };
                    self.stats.packets += 1;
                    emit(std::slice::from_ref(packet), Origin::Carried);
                    p += PACKET_SIZE;
                }
                if p < carried {
                    // The whole chunk fitted in `joined` and ends inside a packet.
                    self.pending = joined.get(p..).unwrap_or_default().to_vec();
                    return;
                }
                self.scan(chunk, from + (p - carried), emit);
            }
            Hunt::NeedMore(keep) => {
                let drop = keep.min(joined.len());
                self.stats.bytes_skipped += drop as u64;
                if window < rest.len() {
                    // The window held no candidate: continue on the chunk.
                    let resume = from + drop.saturating_sub(carried);
                    self.pending.clear();
                    self.hunt_chunk(chunk, resume, emit);
                } else {
                    joined.drain(..drop);
                    self.pending = joined;
                }
            }
        }
    }

    /// Hunts for sync in `chunk` from `from`, then continues scanning.
    fn hunt_chunk(
        &mut self,
        chunk: &[u8],
        from: usize,
        emit: &mut impl FnMut(&[[u8; PACKET_SIZE]], Origin),
    ) {
        match find_sync(chunk, from) {
            Hunt::Locked(at) => {
                self.stats.bytes_skipped += (at - from) as u64;
                self.locked = true;
                self.scan(chunk, at, emit);
            }
            Hunt::NeedMore(keep) => {
                self.stats.bytes_skipped += (keep - from) as u64;
                self.pending
                    .extend_from_slice(chunk.get(keep..).unwrap_or_default());
            }
        }
    }

    /// While locked: hands out aligned packets from `chunk` starting at
    /// `pos`.
    ///
    /// A packet is handed out plainly when it starts with the sync byte and
    /// so does the next one, or the chunk ends first; the sync bytes of a
    /// whole run are checked before the run is handed out in one call.
    fn scan(
        &mut self,
        chunk: &[u8],
        mut pos: usize,
        emit: &mut impl FnMut(&[[u8; PACKET_SIZE]], Origin),
    ) {
        if !self.locked {
            return self.hunt_chunk(chunk, pos, emit);
        }
        loop {
            let rest = chunk.get(pos..).unwrap_or_default();
            let (packets, _) = rest.as_chunks::<PACKET_SIZE>();
            let synced = packets
                .iter()
                .position(|p| p[0] != SYNC_BYTE)
                .unwrap_or(packets.len());
            // The first byte after the synced packets: a bad packet's, the
            // cut-short tail's, or none.
            let after = rest.get(synced * PACKET_SIZE);
            let plain = match after {
                Some(&b) if b != SYNC_BYTE => synced.saturating_sub(1),
                _ => synced,
            };
            if let Some(run) = packets.get(..plain)
                && !run.is_empty()
            {
                self.stats.packets += run.len() as u64;
                emit(run, Origin::Chunk(pos));
            }
            pos += plain * PACKET_SIZE;
            if plain == synced {
                // Every whole packet is out, or there was none: keep the tail.
                if synced == packets.len() {
                    break;
                }
                // The packet at `pos` does not start with the sync byte.
                self.lose_sync();
                self.stats.bytes_skipped += 1;
                return self.hunt_chunk(chunk, pos + 1, emit);
            }
            let Some(packet) = packets.get(plain) else {
                break;
            };
            // Either garbage follows this packet, or this "packet" is cut
            // short (or is garbage that happens to start with 0x47). The
            // next confirmed sync tells which: if it starts inside this
            // packet, this packet is not whole.
            self.lose_sync();
            let next = match find_sync(chunk, pos + 1) {
                Hunt::Locked(at) => Ok(at),
                Hunt::NeedMore(at) => Err(at),
            };
            let at = next.unwrap_or_else(|at| at);
            if at >= pos + PACKET_SIZE {
                self.stats.packets += 1;
                emit(std::slice::from_ref(packet), Origin::Chunk(pos));
                self.stats.bytes_skipped += (at - pos - PACKET_SIZE) as u64;
            } else {
                self.stats.bytes_skipped += (at - pos) as u64;
            }
            match next {
                Ok(at) => {
                    self.locked = true;
                    pos = at;
                }
                Err(at) => {
                    self.pending
                        .extend_from_slice(chunk.get(at..).unwrap_or_default());
                    return;
                }
            }
        }
        self.pending
            .extend_from_slice(chunk.get(pos..).unwrap_or_default());
    }
}

enum Hunt {
    /// Sync confirmed at this offset.
    Locked(usize),
    /// No confirmed sync; bytes before this offset can be discarded.
    NeedMore(usize),
}

fn find_sync(data: &[u8], from: usize) -> Hunt {
    let tail = data.get(from..).unwrap_or_default();
    for candidate in memchr_iter(SYNC_BYTE, tail) {
        let at = from + candidate;
        let confirmed =
            (1..CONFIRM_SYNCS).all(|k| data.get(at + k * PACKET_SIZE) == Some(&SYNC_BYTE));
        if confirmed {
            return Hunt::Locked(at);
        }
        if at + (CONFIRM_SYNCS - 1) * PACKET_SIZE >= data.len() {
            // Can't confirm yet: keep from this candidate on.
            let short = (1..CONFIRM_SYNCS)
                .map(|k| at + k * PACKET_SIZE)
                .take_while(|&q| q < data.len())
                .all(|q| data.get(q) == Some(&SYNC_BYTE));
            if short {
                return Hunt::NeedMore(at);
            }
        }
    }
    Hunt::NeedMore(data.len())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `n` packets whose bytes after the sync byte encode their index, with a
    /// 0x47 byte in each payload to tempt false locks.
    fn stream(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * PACKET_SIZE);
        for i in 0..n {
            let mut p = [0x47u8; PACKET_SIZE];
            p[1] = (i >> 8) as u8;
            p[2] = i as u8;
            p[3] = real_marker(i);
            for (j, b) in p.iter_mut().enumerate().skip(4) {
                // One 0x47 per packet, at an offset that differs from the
                // neighbours' so it never lines up 188 bytes apart.
                *b = if j == 4 + (i * 37) % 180 {
                    0x47
                } else {
                    (j * 7 + i) as u8 | 1
                };
            }
            out.extend_from_slice(&p);
        }
        out
    }

    fn real_marker(i: usize) -> u8 {
        (i as u8) ^ 0xA5
    }

    fn indices(r: &mut Resync, chunks: &[&[u8]]) -> Vec<usize> {
        let mut got = Vec::new();
        for c in chunks {
            r.push(c, |p, _| {
                got.push(usize::from(p[1]) << 8 | usize::from(p[2]))
            });
        }
        r.finish(|p, _| got.push(usize::from(p[1]) << 8 | usize::from(p[2])));
        got
    }

    #[test]
    fn aligned_chunks_are_zero_copy() {
        let s = stream(10);
        let mut r = Resync::new();
        let mut origins = Vec::new();
        r.push(&s, |_, o| origins.push(o));
        // The last CONFIRM_SYNCS-1 packets can be emitted only once locked,
        // which happens at once because the whole chunk is present.
        assert_eq!(origins.len(), 10);
        assert!(origins.iter().all(|o| matches!(o, Origin::Chunk(_))));
    }

    #[test]
    fn any_split_yields_the_same_packets() {
        let s = stream(20);
        for split in [1, 2, 100, 187, 188, 189, 500, 1000] {
            let mut r = Resync::new();
            let chunks: Vec<&[u8]> = s.chunks(split).collect();
            assert_eq!(
                indices(&mut r, &chunks),
                (0..20).collect::<Vec<_>>(),
                "split {split}"
            );
            assert_eq!(r.stats().sync_losses, 0);
            assert_eq!(r.stats().bytes_skipped, 0);
        }
    }

    #[test]
    fn recovers_after_garbage() {
        let s = stream(20);
        let mut damaged = s[..5 * PACKET_SIZE].to_vec();
        damaged.extend_from_slice(&[0x47, 1, 2, 3, 0x47, 9, 9]);
        damaged.extend_from_slice(&s[5 * PACKET_SIZE..]);
        let mut r = Resync::new();
        assert_eq!(indices(&mut r, &[&damaged]), (0..20).collect::<Vec<_>>());
        assert_eq!(r.stats().sync_losses, 1);
        assert_eq!(r.stats().bytes_skipped, 7);
    }

    #[test]
    fn truncated_packet_mid_stream_loses_only_itself() {
        // Packet 6 is cut to 100 bytes: the sync byte of packet 7 inside it
        // shows it is not whole, so it is dropped and nothing else is.
        let s = stream(20);
        let mut damaged = s[..6 * PACKET_SIZE + 100].to_vec();
        damaged.extend_from_slice(&s[7 * PACKET_SIZE..]);
        let mut r = Resync::new();
        let got = indices(&mut r, &[&damaged]);
        let want: Vec<usize> = (0..20).filter(|&i| i != 6).collect();
        assert_eq!(got, want);
        assert_eq!(r.stats().sync_losses, 1);
        assert_eq!(r.stats().bytes_skipped, 100);
    }

    #[test]
    fn garbage_after_a_packet_keeps_the_packet() {
        let s = stream(20);
        let mut damaged = s[..5 * PACKET_SIZE].to_vec();
        damaged.extend_from_slice(&[1, 2, 3, 0x47, 5]);
        damaged.extend_from_slice(&s[5 * PACKET_SIZE..]);
        let mut r = Resync::new();
        assert_eq!(indices(&mut r, &[&damaged]), (0..20).collect::<Vec<_>>());
        assert_eq!(r.stats().bytes_skipped, 5);
    }

    #[test]
    fn truncated_tail_is_reported() {
        let s = stream(5);
        let mut r = Resync::new();
        let got = indices(&mut r, &[&s[..4 * PACKET_SIZE + 100]]);
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert!(r.stats().truncated_tail);
        assert_eq!(r.stats().bytes_skipped, 100);
    }

    #[test]
    fn short_stream_is_accepted_at_finish() {
        let s = stream(2);
        let mut r = Resync::new();
        assert_eq!(indices(&mut r, &[&s]), vec![0, 1]);
    }

    #[test]
    fn garbage_alone_yields_nothing() {
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8 | 0x80).collect();
        let mut r = Resync::new();
        assert!(indices(&mut r, &[&garbage]).is_empty());
        assert_eq!(r.stats().bytes_skipped, 5000);
    }

    proptest! {
        /// `push_runs` hands out the packets `push` does, with the same
        /// origins and statistics, its runs are consecutive in the chunk, and
        /// its shortcut for the usual chunk agrees with the general path.
        #[test]
        fn runs_agree_with_packets(
            // Edits land on sync bytes half the time.
            edits in proptest::collection::vec(
                (0usize..40, prop_oneof![Just(0usize), 0usize..PACKET_SIZE], any::<u8>()),
                0..6,
            ),
            cut in proptest::option::of(0usize..40 * PACKET_SIZE),
            // Chunks of whole packets, often with a few bytes more or less.
            split in prop_oneof![(1usize..8, 0usize..3).prop_map(|(n, r)| n * PACKET_SIZE + r), 1usize..1500],
        ) {
            let mut data = stream(40);
            for (packet, at, b) in &edits {
                data[packet * PACKET_SIZE + at] = if b % 3 == 0 { 0x47 } else { *b };
            }
            if let Some(cut) = cut {
                data.drain(cut..(cut + 100).min(data.len()));
            }
            let mut each = Resync::new();
            let mut runs = Resync::new();
            let mut general = Resync::new();
            let (mut by_packet, mut by_run, mut by_general) = (Vec::new(), Vec::new(), Vec::new());
            for c in data.chunks(split) {
                each.push(c, |p, o| by_packet.push((p.to_vec(), o)));
                general.push_any(c, |run, o| {
                    by_general.extend(run.iter().enumerate().map(|(n, p)| (p.to_vec(), o.nth(n))));
                });
                runs.push_runs(c, |run, o| {
                    for (n, p) in run.iter().enumerate() {
                        if let Origin::Chunk(at) = o {
                            assert_eq!(&c[at + n * PACKET_SIZE..][..PACKET_SIZE], p);
                        }
                        by_run.push((p.to_vec(), o.nth(n)));
                    }
                });
                prop_assert_eq!(&by_run, &by_packet);
                prop_assert_eq!(&by_general, &by_packet);
                prop_assert_eq!(runs.stats(), each.stats());
                prop_assert_eq!(general.stats(), each.stats());
                prop_assert_eq!(runs.is_locked(), each.is_locked());
                prop_assert_eq!(&runs.pending, &general.pending);
            }
        }

        #[test]
        fn garbage_insertions_and_splits(
            inserts in proptest::collection::vec((0usize..40, proptest::collection::vec(any::<u8>(), 1..50)), 0..4),
            split in 1usize..700,
        ) {
            let s = stream(40);
            let mut damaged = Vec::new();
            let mut at = 0;
            let mut inserts = inserts;
            inserts.sort_by_key(|i| i.0);
            inserts.dedup_by_key(|i| i.0);
            for (packet, garbage) in &inserts {
                damaged.extend_from_slice(&s[at..packet * PACKET_SIZE]);
                damaged.extend_from_slice(garbage);
                at = packet * PACKET_SIZE;
            }
            damaged.extend_from_slice(&s[at..]);
            let mut r = Resync::new();
            let chunks: Vec<&[u8]> = damaged.chunks(split).collect();
            let mut got = Vec::new();
            let mut fake = 0;
            for c in &chunks {
                r.push(c, |p, _| {
                    let i = usize::from(p[1]) << 8 | usize::from(p[2]);
                    if i < 40 && p[3] == real_marker(i) { got.push(i) } else { fake += 1 }
                });
            }
            r.finish(|p, _| {
                let i = usize::from(p[1]) << 8 | usize::from(p[2]);
                if i < 40 && p[3] == real_marker(i) { got.push(i) } else { fake += 1 }
            });
            // Real packets come out in order; each insertion costs at most
            // the packet it lands in (plus what a rare false lock on garbage
            // takes); fakes (a false lock: three 0x47 bytes 188 apart across
            // garbage and payload) are bounded by the insertions.
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(fake <= inserts.len() * CONFIRM_SYNCS);
            prop_assert!(got.len() + inserts.len() * (CONFIRM_SYNCS + 1) >= 40);
            let got = [got.clone(), vec![0; fake]].concat();
            let stats = r.stats();
            prop_assert_eq!(stats.packets as usize, got.len());
            prop_assert!(stats.bytes_skipped as usize <= damaged.len());
        }
    }
}
