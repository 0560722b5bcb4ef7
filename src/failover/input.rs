//! Main/backup input selection (DESIGN.md, promise 3).
//!
//! [`InputSwitch`] owns a [`Splicer`] with two sources, the stream's main
//! and backup inputs, and decides which one the output carries:
//!
//! - The **main is lost** when no packet arrives for
//!   [`InputSettings::input_timeout`], or on a burst of continuity errors
//!   ([`InputSettings::cc_burst_errors`] within
//!   [`InputSettings::cc_burst_window`]: packets still flow but frames are
//!   broken). Then, if the backup is live, the output switches to it at
//!   the backup's next splice point (IDR).
//! - The output **returns to the main** once the main has been
//!   continuously healthy (packets flowing, no burst) for
//!   [`InputSettings::revert_after`], again at the main's next IDR. Each
//!   loss restarts that wait, so a flapping main does not flap the output.
//! - With one input (the common case), everything passes through the
//!   splicer from that input. A backup may come and go at any time; with
//!   only a backup, the backup is carried.
//!
//! The switch keeps every output guarantee of [`crate::splice`]; its gap
//! is the detection time plus the wait for the next IDR.
//!
//! Sans-IO, quinn style: [`InputSwitch::push`] with each datagram,
//! [`InputSwitch::handle_timeout`] when [`InputSwitch::poll_timeout`]
//! says so, and [`InputSwitch::poll_event`] for what happened.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::{InputRole, StreamSettings};
use crate::splice::{SourceId, SpliceEvent, SpliceSettings, SpliceStats, Splicer};
use crate::ts::PACKET_SIZE;

/// Tuning of an [`InputSwitch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSettings {
    /// An input is lost after this long without packets. Default 500 ms
    /// (`input_timeout_ms`).
    pub input_timeout: Duration,
    /// The main must be healthy this long before the output returns to it.
    /// Default 10 s (`revert_after_ms`).
    pub revert_after: Duration,
    /// Continuity errors within [`InputSettings::cc_burst_window`] that
    /// make an input lost. Default 8: a single lost datagram (7 packets,
    /// at most a few PIDs) costs 1–3 errors and must not trigger a
    /// failover; 8 in a second is sustained loss that breaks frames.
    pub cc_burst_errors: u32,
    /// Default 1 s. An input lost by a burst counts as healthy again after
    /// a whole window without reaching the threshold.
    pub cc_burst_window: Duration,
    pub splice: SpliceSettings,
}

impl Default for InputSettings {
    fn default() -> Self {
        InputSettings::from_stream(&StreamSettings::default())
    }
}

impl InputSettings {
    /// The settings of a configured stream, with the built-in burst and
    /// splice defaults.
    pub fn from_stream(stream: &StreamSettings) -> InputSettings {
        InputSettings {
            input_timeout: stream.input_timeout,
            revert_after: stream.revert_after,
            cc_burst_errors: 8,
            cc_burst_window: Duration::from_secs(1),
            splice: SpliceSettings::default(),
        }
    }
}

/// Why an input is considered lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// No packets for `input_timeout`.
    Timeout,
    /// `cc_burst_errors` continuity errors within `cc_burst_window`.
    CcBurst,
    /// [`InputSwitch::remove_input`].
    Removed,
}

/// Why the output was switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first input to go live.
    Start,
    /// Only the backup is there.
    MainAbsent,
    MainTimeout,
    MainCcBurst,
    MainRemoved,
    /// Back to the main after `revert_after` of health.
    Revert,
    /// The backup was lost while the main is live (before `revert_after`).
    BackupLost,
}

/// What an [`InputSwitch`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    InputLost {
        role: InputRole,
        reason: LossReason,
    },
    /// Packets flow again (after a timeout) or a burst has passed.
    InputRecovered {
        role: InputRole,
    },
    /// The output now carries `to`, from its splice point on.
    Switched {
        /// `None` at the start.
        from: Option<InputRole>,
        to: InputRole,
        reason: SwitchReason,
        /// Wall-clock time without output packets at the switch.
        gap: Duration,
        /// The new input's timestamps were rebased.
        rebased: bool,
    },
}

/// Counters of an [`InputSwitch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputStats {
    pub splice: SpliceStats,
    pub datagrams: u64,
    /// Datagrams whose length is not a multiple of 188: the tail is
    /// skipped.
    pub partial_datagrams: u64,
    pub partial_bytes: u64,
    pub switches: u64,
    pub main_losses: u64,
    pub backup_losses: u64,
}

#[derive(Debug, Default)]
struct Input {
    present: bool,
    last_packet: Option<Instant>,
    lost: Option<LossReason>,
    /// Since when the input has been healthy without interruption.
    healthy_since: Option<Instant>,
    /// The source's continuity error count at the last look.
    cc_errors: u64,
    /// When recent continuity errors were seen (at most the threshold).
    cc_times: VecDeque<Instant>,
}

/// See the module docs.
#[derive(Debug)]
pub struct InputSwitch {
    settings: InputSettings,
    splicer: Splicer,
    /// Main, backup.
    inputs: [Input; 2],
    /// The reason of the switch the splicer has pending.
    reason: Option<SwitchReason>,
    events: VecDeque<InputEvent>,
    stats: InputStats,
}

fn source(role: InputRole) -> SourceId {
    match role {
        InputRole::Main => SourceId(0),
        InputRole::Backup => SourceId(1),
    }
}

fn role(source: SourceId) -> InputRole {
    if source == SourceId(0) {
        InputRole::Main
    } else {
        InputRole::Backup
    }
}

impl InputSwitch {
    pub fn new(settings: InputSettings) -> InputSwitch {
        InputSwitch {
            settings,
            splicer: Splicer::new(settings.splice),
            inputs: [Input::default(), Input::default()],
            reason: None,
            events: VecDeque::new(),
            stats: InputStats::default(),
        }
    }

    /// The input the output carries.
    pub fn active(&self) -> Option<InputRole> {
        self.splicer.active().map(role)
    }

    /// The input a switch waits for (its next IDR).
    pub fn pending(&self) -> Option<InputRole> {
        self.splicer.pending().map(role)
    }

    pub fn stats(&self) -> InputStats {
        InputStats {
            splice: self.splicer.stats(),
            ..self.stats
        }
    }

    pub fn poll_event(&mut self) -> Option<InputEvent> {
        self.events.pop_front()
    }

    /// Feeds one datagram (or packet) of an input: whole 188-byte packets;
    /// a tail that is not one is counted and skipped. Output packets are
    /// appended to `out`.
    pub fn push(&mut self, now: Instant, role: InputRole, datagram: Bytes, out: &mut Vec<Bytes>) {
        self.stats.datagrams += 1;
        let whole = datagram.len() / PACKET_SIZE * PACKET_SIZE;
        if whole != datagram.len() {
            self.stats.partial_datagrams += 1;
            self.stats.partial_bytes += (datagram.len() - whole) as u64;
        }
        let input = self.input_mut(role);
        input.present = true;
        input.last_packet = Some(now);
        if input.lost == Some(LossReason::Timeout) || input.lost == Some(LossReason::Removed) {
            self.recover(now, role);
        }
        self.decide(now);
        let id = source(role);
        for at in (0..whole).step_by(PACKET_SIZE) {
            self.splicer
                .push(now, id, datagram.slice(at..at + PACKET_SIZE), out);
        }
        self.count_cc_errors(now, role);
        self.decide(now);
        self.drain_splicer();
    }

    /// Runs the timers: input timeouts, burst windows, the revert wait.
    /// Nothing is sent from here today; `out` is where a future flush
    /// would go, so the shell's call needs no change.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Bytes>) {
        let _ = out;
        self.decide(now);
        self.drain_splicer();
    }

    /// When [`InputSwitch::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for input in &self.inputs {
            if !input.present {
                continue;
            }
            match input.lost {
                None => consider(input.last_packet.map(|t| t + self.settings.input_timeout)),
                Some(LossReason::CcBurst) => consider(
                    input
                        .cc_times
                        .back()
                        .map(|t| *t + self.settings.cc_burst_window),
                ),
                Some(_) => {}
            }
        }
        let carrying_backup = self.current() == Some(InputRole::Backup);
        if carrying_backup && self.main().lost.is_none() {
            consider(
                self.main()
                    .healthy_since
                    .map(|t| t + self.settings.revert_after),
            );
        }
        next
    }

    /// Forgets an input (its publisher left). Removing the carried input
    /// switches to the other one, if it is live.
    pub fn remove_input(&mut self, now: Instant, role: InputRole) {
        self.splicer.remove_source(source(role));
        let input = self.input_mut(role);
        let was_live = input.present && input.lost.is_none();
        *input = Input {
            lost: Some(LossReason::Removed),
            ..Input::default()
        };
        if was_live {
            self.lost(role, LossReason::Removed);
        }
        self.decide(now);
        self.drain_splicer();
    }

    fn main(&self) -> &Input {
        let [main, _] = &self.inputs;
        main
    }

    fn input(&self, role: InputRole) -> &Input {
        let [main, backup] = &self.inputs;
        match role {
            InputRole::Main => main,
            InputRole::Backup => backup,
        }
    }

    fn input_mut(&mut self, role: InputRole) -> &mut Input {
        let [main, backup] = &mut self.inputs;
        match role {
            InputRole::Main => main,
            InputRole::Backup => backup,
        }
    }

    fn live(&self, role: InputRole) -> bool {
        let input = self.input(role);
        input.present && input.lost.is_none()
    }

    /// The input the output carries or is switching to.
    fn current(&self) -> Option<InputRole> {
        self.splicer.pending().or(self.splicer.active()).map(role)
    }

    fn count_cc_errors(&mut self, now: Instant, role: InputRole) {
        let total = self
            .splicer
            .source_stats(source(role))
            .map_or(0, |s| s.cc_errors);
        let threshold = self.settings.cc_burst_errors;
        let window = self.settings.cc_burst_window;
        let input = self.input_mut(role);
        let new = total.saturating_sub(input.cc_errors);
        input.cc_errors = total;
        if new == 0 {
            return;
        }
        for _ in 0..new.min(u64::from(threshold)) {
            input.cc_times.push_back(now);
        }
        while input
            .cc_times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
            || input.cc_times.len() > threshold as usize
        {
            input.cc_times.pop_front();
        }
        if input.cc_times.len() >= threshold as usize && input.lost.is_none() {
            input.healthy_since = None;
            input.lost = Some(LossReason::CcBurst);
            self.lost(role, LossReason::CcBurst);
        } else if input.lost == Some(LossReason::CcBurst) {
            // Errors keep coming: the burst goes on.
            input.healthy_since = None;
        }
    }

    fn lost(&mut self, role: InputRole, reason: LossReason) {
        match role {
            InputRole::Main => self.stats.main_losses += 1,
            InputRole::Backup => self.stats.backup_losses += 1,
        }
        tracing::warn!(?role, ?reason, "input lost");
        self.events
            .push_back(InputEvent::InputLost { role, reason });
    }

    fn recover(&mut self, now: Instant, role: InputRole) {
        let input = self.input_mut(role);
        let was_lost = input.lost.take().is_some_and(|r| r != LossReason::Removed);
        input.healthy_since = Some(now);
        input.cc_times.clear();
        if was_lost {
            tracing::info!(?role, "input recovered");
            self.events.push_back(InputEvent::InputRecovered { role });
        }
    }

    /// Updates loss and recovery from the clock, then asks the splicer for
    /// the input the output should carry.
    fn decide(&mut self, now: Instant) {
        for role in [InputRole::Main, InputRole::Backup] {
            let timeout = self.settings.input_timeout;
            let window = self.settings.cc_burst_window;
            let input = self.input(role);
            if !input.present {
                continue;
            }
            let silent = input
                .last_packet
                .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
            match input.lost {
                None if silent => {
                    let input = self.input_mut(role);
                    input.lost = Some(LossReason::Timeout);
                    input.healthy_since = None;
                    self.lost(role, LossReason::Timeout);
                }
                None if input.healthy_since.is_none() => {
                    self.input_mut(role).healthy_since = Some(now);
                }
                Some(LossReason::CcBurst)
                    if !silent
                        && input
                            .cc_times
                            .back()
                            .is_none_or(|t| now.saturating_duration_since(*t) >= window) =>
                {
                    self.recover(now, role);
                }
                _ => {}
            }
        }
        let (main, backup) = (self.live(InputRole::Main), self.live(InputRole::Backup));
        // With a backup to fail over to, a main that dies mid-frame must
        // not leave half a frame in the output: one frame of latency.
        self.splicer.set_frame_hold(main && backup);
        let started = self.stats.switches > 0 || self.reason.is_some();
        let main_loss = match self.main().lost {
            Some(LossReason::CcBurst) => SwitchReason::MainCcBurst,
            Some(LossReason::Removed) if started => SwitchReason::MainRemoved,
            Some(LossReason::Timeout) => SwitchReason::MainTimeout,
            _ => SwitchReason::MainAbsent,
        };
        let wanted = match self.current() {
            None if main => Some((
                InputRole::Main,
                if started {
                    SwitchReason::BackupLost
                } else {
                    SwitchReason::Start
                },
            )),
            None if backup => Some((InputRole::Backup, main_loss)),
            Some(InputRole::Main) if !main && backup => Some((InputRole::Backup, main_loss)),
            Some(InputRole::Backup) if main => {
                let healthy_for = self
                    .main()
                    .healthy_since
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                if healthy_for >= self.settings.revert_after {
                    Some((InputRole::Main, SwitchReason::Revert))
                } else if !backup {
                    Some((InputRole::Main, SwitchReason::BackupLost))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((to, reason)) = wanted {
            tracing::info!(?to, ?reason, "input switch requested");
            self.reason = Some(reason);
            self.splicer.switch_to(now, source(to));
        }
    }

    fn drain_splicer(&mut self) {
        while let Some(event) = self.splicer.poll_event() {
            let SpliceEvent::Switched {
                from,
                to,
                gap,
                rebased,
                ..
            } = event;
            let reason = self.reason.take().unwrap_or(SwitchReason::Start);
            self.stats.switches += 1;
            tracing::info!(from = ?from.map(role), to = ?role(to), ?reason, ?gap, rebased, "input switched");
            self.events.push_back(InputEvent::Switched {
                from: from.map(role),
                to: role(to),
                reason,
                gap,
                rebased,
            });
        }
    }
}

#[cfg(test)]
mod tests;
