//! Presentation-order checks for one elementary stream's timestamps.
//!
//! Frames arrive in decode order. With B-frames, presentation timestamps are
//! legitimately out of order within a small window (the decoder's reorder
//! depth), so a plain "PTS went down" count would flag every B-frame. The
//! tracker replays what a decoder's output stage does: frames enter a
//! min-heap keyed by PTS and leave it, smallest first, once more than
//! `depth` frames are waiting. A frame that leaves the heap with a PTS below
//! one already presented is a *regression*; one equal to a PTS presented (or
//! waiting) recently is a *duplicate*. H.264/HEVC streams from common
//! encoders need a depth of at most 4 (x264 `b-pyramid` with 3 B-frames);
//! the probe uses 8 for video and 0 for audio.
//!
//! A splice that repeats or drops frames therefore shows up as duplicates
//! (the same timeline replayed) or as a large gap; a splice onto an
//! unrelated clock shows up as regressions or a large gap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::ts::Timestamp;

/// How many presented timestamps are remembered to recognise duplicates.
const RECENT: usize = 64;

/// Maps 33-bit timestamps onto a continuous `i64` timeline, following the
/// wrap at 2^33 in either direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts: Timestamp) -> i64 {
        let value = match self.last {
            None => ts.ticks() as i64,
            Some(last) => {
                let previous = Timestamp::new(last.rem_euclid(Timestamp::MODULUS as i64) as u64);
                last + ts.delta(previous)
            }
        };
        self.last = Some(value);
        value
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct PtsOrder {
    depth: usize,
    unwrapper: Unwrapper,
    waiting: BinaryHeap<Reverse<i64>>,
    recent: VecDeque<i64>,
    last_presented: Option<i64>,
    pub frames: u64,
    pub backwards: u64,
    pub duplicates: u64,
    /// Largest step between consecutive presented timestamps, in 90 kHz ticks.
    pub max_gap: i64,
    pub first: Option<i64>,
    pub last: Option<i64>,
}

impl PtsOrder {
    pub fn new(depth: usize) -> PtsOrder {
        PtsOrder {
            depth,
            unwrapper: Unwrapper::default(),
            waiting: BinaryHeap::with_capacity(depth + 1),
            recent: VecDeque::with_capacity(RECENT),
            last_presented: None,
            frames: 0,
            backwards: 0,
            duplicates: 0,
            max_gap: 0,
            first: None,
            last: None,
        }
    }

    /// Adds the next frame in decode order.
    pub fn push(&mut self, pts: Timestamp) {
        let value = self.unwrapper.unwrap(pts);
        self.frames += 1;
        self.first = Some(self.first.map_or(value, |f| f.min(value)));
        self.last = Some(self.last.map_or(value, |l| l.max(value)));
        if self.waiting.iter().any(|Reverse(w)| *w == value) {
            self.duplicates += 1;
            return;
        }
        self.waiting.push(Reverse(value));
        while self.waiting.len() > self.depth {
            self.present();
        }
    }

    /// Presents every waiting frame (end of stream).
    pub fn finish(&mut self) {
        while !self.waiting.is_empty() {
            self.present();
        }
    }

    fn present(&mut self) {
        let Some(Reverse(value)) = self.waiting.pop() else {
            return;
        };
        if self.recent.contains(&value) {
            self.duplicates += 1;
            return;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        match self.last_presented {
            Some(last) if value < last => self.backwards += 1,
            Some(last) => {
                self.max_gap = self.max_gap.max(value - last);
                self.last_presented = Some(value);
            }
            None => self.last_presented = Some(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(depth: usize, pts: &[u64]) -> PtsOrder {
        let mut o = PtsOrder::new(depth);
        for &p in pts {
            o.push(Timestamp::new(p));
        }
        o.finish();
        o
    }

    #[test]
    fn b_frames_are_not_regressions() {
        // I P B B P B B in decode order, 3000-tick frames.
        let o = run(8, &[0, 9000, 3000, 6000, 18000, 12000, 15000]);
        assert_eq!((o.backwards, o.duplicates, o.max_gap), (0, 0, 3000));
    }

    #[test]
    fn repeated_gop_is_duplicates() {
        let mut pts: Vec<u64> = (0..30).map(|i| i * 3000).collect();
        pts.extend((20..40).map(|i| i * 3000));
        let o = run(8, &pts);
        assert_eq!(o.duplicates, 10);
        assert_eq!(o.backwards, 0);
    }

    #[test]
    fn jump_back_to_unseen_values_is_regression() {
        let mut pts: Vec<u64> = (0..100).map(|i| i * 3000).collect();
        pts.extend((0..5).map(|i| 100_000 + i * 3000 + 7));
        let o = run(8, &pts);
        assert_eq!(o.backwards, 5);
    }

    #[test]
    fn gap_is_measured() {
        let o = run(0, &[0, 1920, 3840, 9600, 11520]);
        assert_eq!(o.max_gap, 5760);
    }

    #[test]
    fn wrap_is_not_a_regression() {
        let m = Timestamp::MODULUS;
        let o = run(8, &[m - 6000, m - 3000, 0, 3000]);
        assert_eq!((o.backwards, o.duplicates, o.max_gap), (0, 0, 3000));
    }
}
