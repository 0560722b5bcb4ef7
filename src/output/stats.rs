//! Counters of one output, shared lock-free between its task (writer) and
//! the API and `/metrics` (readers).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// What an output is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputState {
    /// First attempt in progress: opening, resolving, handshaking.
    Connecting,
    /// Up: packets are being sent.
    Connected,
    /// Down after a failure, waiting for the backoff delay or retrying;
    /// packets from the stream are dropped meanwhile.
    Retrying,
    /// The task has finished (shutdown or stream removed).
    Stopped,
}

impl OutputState {
    fn from_u8(v: u8) -> OutputState {
        match v {
            0 => OutputState::Connecting,
            1 => OutputState::Connected,
            2 => OutputState::Retrying,
            _ => OutputState::Stopped,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            OutputState::Connecting => 0,
            OutputState::Connected => 1,
            OutputState::Retrying => 2,
            OutputState::Stopped => 3,
        }
    }

    /// A stable name for metrics labels and the API.
    pub fn label(self) -> &'static str {
        match self {
            OutputState::Connecting => "connecting",
            OutputState::Connected => "connected",
            OutputState::Retrying => "retrying",
            OutputState::Stopped => "stopped",
        }
    }
}

/// Counters of one output task. Create it with `Default`, hand an `Arc` of
/// it to the task, read it with [`OutputStats::snapshot`]. Every counter is
/// monotonic; only the output task writes.
///
/// Packets are 188-byte TS packets (not SRT or UDP packets); bytes are
/// their bytes, without protocol overhead.
#[derive(Debug, Default)]
pub struct OutputStats {
    packets_sent: AtomicU64,
    bytes_sent: AtomicU64,
    packets_dropped: AtomicU64,
    send_errors: AtomicU64,
    sessions: AtomicU64,
    failures: AtomicU64,
    state: AtomicU8,
    last_error: Mutex<Option<String>>,
}

/// A consistent-enough copy of [`OutputStats`] (each field is read
/// atomically; the set is not one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputStatsSnapshot {
    pub state: OutputState,
    /// TS packets handed to the socket, file or SRT sender.
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// TS packets that never went out: drained from the feed while the
    /// output was down, or lost in a failed send or write.
    pub packets_dropped: u64,
    /// Failed sends or writes (one per datagram or write call).
    pub send_errors: u64,
    /// Sessions (connections, opened files) established, the first one
    /// included.
    pub sessions: u64,
    /// Sessions established after the first one.
    pub reconnects: u64,
    /// Failed attempts and sessions that ended in an error.
    pub failures: u64,
    /// The most recent failure, as logged.
    pub last_error: Option<String>,
}

impl OutputStats {
    pub fn snapshot(&self) -> OutputStatsSnapshot {
        let sessions = self.sessions.load(Ordering::Relaxed);
        OutputStatsSnapshot {
            state: self.state(),
            packets_sent: self.packets_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            packets_dropped: self.packets_dropped.load(Ordering::Relaxed),
            send_errors: self.send_errors.load(Ordering::Relaxed),
            sessions,
            reconnects: sessions.saturating_sub(1),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self.last_error().clone(),
        }
    }

    pub fn state(&self) -> OutputState {
        OutputState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic elsewhere while holding this lock cannot leave a string
        // half-written: the poison carries no meaning here.
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_state(&self, state: OutputState) {
        self.state.store(state.as_u8(), Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, packets: usize, bytes: usize) {
        self.packets_sent
            .fetch_add(packets as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self, packets: usize) {
        self.packets_dropped
            .fetch_add(packets as u64, Ordering::Relaxed);
    }

    pub(crate) fn send_error(&self, packets_lost: usize) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
        self.dropped(packets_lost);
    }

    pub(crate) fn session_started(&self) {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.set_state(OutputState::Connected);
    }

    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error() = Some(error.to_string());
        self.set_state(OutputState::Retrying);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_states() {
        let s = OutputStats::default();
        assert_eq!(s.state(), OutputState::Connecting);
        s.session_started();
        s.sent(7, 1316);
        s.send_error(7);
        s.dropped(3);
        s.failed(&"refused");
        s.session_started();
        let snap = s.snapshot();
        assert_eq!(snap.state, OutputState::Connected);
        assert_eq!(
            (snap.packets_sent, snap.bytes_sent, snap.packets_dropped),
            (7, 1316, 10)
        );
        assert_eq!(
            (snap.send_errors, snap.sessions, snap.reconnects),
            (1, 2, 1)
        );
        assert_eq!(snap.failures, 1);
        assert_eq!(snap.last_error.as_deref(), Some("refused"));
        for state in [
            OutputState::Connecting,
            OutputState::Connected,
            OutputState::Retrying,
            OutputState::Stopped,
        ] {
            s.set_state(state);
            assert_eq!(s.state(), state);
        }
    }
}
