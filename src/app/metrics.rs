//! Counters the tasks update and the API reads, without locks on the data
//! path.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::InputRole;
use crate::failover::SwitchReason;
use crate::ring::StreamStats;

/// Switch events kept per stream for the API: the most recent ones.
const SWITCH_HISTORY: usize = 32;

/// One input switch of a stream's output (issue 3, point 5: "each switch
/// is an event with reason and measured gap").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchRecord {
    /// When the stream task saw it.
    pub at: Instant,
    /// `None` when the output started.
    pub from: Option<InputRole>,
    pub to: InputRole,
    pub reason: SwitchReason,
    /// Wall-clock time without output packets at the switch.
    pub gap: Duration,
    /// The new input's timestamps were rebased onto the output timeline.
    pub rebased: bool,
}

/// One stream's counters.
#[derive(Debug, Default)]
pub struct StreamMetrics {
    main_bytes: AtomicU64,
    backup_bytes: AtomicU64,
    main_datagrams: AtomicU64,
    backup_datagrams: AtomicU64,
    /// Datagrams the SRT port task dropped because the stream's mailbox
    /// was full.
    pub mailbox_drops: AtomicU64,
    switches: AtomicU64,
    switch_events: Mutex<VecDeque<SwitchRecord>>,
    buffer: Mutex<Option<StreamStats>>,
    encoder_failovers: AtomicU64,
    encoder_frames_lost: AtomicU64,
    encoder_frames_duplicated: AtomicU64,
}

/// A copy of [`StreamMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSnapshot {
    pub main_bytes: u64,
    pub backup_bytes: u64,
    pub main_datagrams: u64,
    pub backup_datagrams: u64,
    pub mailbox_drops: u64,
    pub switches: u64,
    pub buffer: Option<StreamStats>,
    /// Encoder failovers, and the frames they lost and duplicated.
    pub encoder_failovers: u64,
    pub encoder_frames_lost: u64,
    pub encoder_frames_duplicated: u64,
}

impl StreamMetrics {
    pub fn add_input(&self, role: InputRole, bytes: usize) {
        let (b, d) = match role {
            InputRole::Main => (&self.main_bytes, &self.main_datagrams),
            InputRole::Backup => (&self.backup_bytes, &self.backup_datagrams),
        };
        b.fetch_add(bytes as u64, Ordering::Relaxed);
        d.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_switch(&self, record: SwitchRecord) {
        self.switches.fetch_add(1, Ordering::Relaxed);
        let mut events = self.switch_events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == SWITCH_HISTORY {
            events.pop_front();
        }
        events.push_back(record);
    }

    /// The most recent switches, oldest first.
    pub fn switch_events(&self) -> Vec<SwitchRecord> {
        self.switch_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub fn count_encoder_failover(&self, frames_lost: u64, frames_duplicated: u64) {
        self.encoder_failovers.fetch_add(1, Ordering::Relaxed);
        self.encoder_frames_lost
            .fetch_add(frames_lost, Ordering::Relaxed);
        self.encoder_frames_duplicated
            .fetch_add(frames_duplicated, Ordering::Relaxed);
    }

    pub fn count_mailbox_drop(&self) {
        self.mailbox_drops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_buffer(&self, stats: &StreamStats) {
        *self.buffer.lock().unwrap_or_else(|e| e.into_inner()) = Some(*stats);
    }

    pub fn snapshot(&self) -> StreamSnapshot {
        StreamSnapshot {
            main_bytes: self.main_bytes.load(Ordering::Relaxed),
            backup_bytes: self.backup_bytes.load(Ordering::Relaxed),
            main_datagrams: self.main_datagrams.load(Ordering::Relaxed),
            backup_datagrams: self.backup_datagrams.load(Ordering::Relaxed),
            mailbox_drops: self.mailbox_drops.load(Ordering::Relaxed),
            switches: self.switches.load(Ordering::Relaxed),
            buffer: *self.buffer.lock().unwrap_or_else(|e| e.into_inner()),
            encoder_failovers: self.encoder_failovers.load(Ordering::Relaxed),
            encoder_frames_lost: self.encoder_frames_lost.load(Ordering::Relaxed),
            encoder_frames_duplicated: self.encoder_frames_duplicated.load(Ordering::Relaxed),
        }
    }
}
