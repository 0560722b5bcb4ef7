//! Which encoder carries a stream, and when to move it (issue 4, point 5).
//!
//! [`EncoderSupervisor`] is the per-stream decision core: it hears about
//! the stream's encoders (started, became ready, health transitions,
//! exited) with `now`, and answers with [`Action`]s for the shell — start
//! an encoder, switch the output to one, stop one, fall back to
//! passthrough — and [`FailoverEvent`]s for the log and metrics.
//!
//! Rules:
//!
//! - A stream has one *active* encoder, whose output is published, and,
//!   with `standby = "hot"`, a *standby* fed in parallel.
//! - **Failed** (exit, stall, stopped): move at once. **Degraded** for
//!   `degraded_grace` while a healthier encoder is available (a ready
//!   standby, or capacity for a new one): move.
//! - Moving means: switch the output to a ready standby if there is one
//!   (no start-up), else start a replacement and switch when it is ready
//!   (its first output); the old encoder is stopped once it is replaced
//!   (SIGTERM, then SIGKILL: the shell's job), at once if it failed.
//! - A stream whose encoders keep failing (`crash_limit` failures within
//!   `crash_window`, counting only encoders that failed before producing
//!   output for `settled_after`: one that ran and then died is replaced,
//!   not held against the stream) backs off exponentially before starting another, and
//!   after `max_restarts_in_backoff` backoffs falls back to passthrough or
//!   stops, per configuration, and says so.
//!
//! Encoders are named by [`EncoderId`]s the supervisor hands out; the
//! shell maps them to processes.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::health::HealthState;

/// An encoder of one stream, numbered from 1 in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EncoderId(pub u64);

impl fmt::Display for EncoderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encoder {}", self.0)
    }
}

/// What to do when encoders keep failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GiveUp {
    /// Publish the input as it is (no encoder).
    #[default]
    Passthrough,
    /// Stop publishing the stream.
    Stop,
}

/// Tuning of an [`EncoderSupervisor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorSettings {
    /// Degraded this long, with a healthier encoder available: move.
    /// Default 2 s.
    pub degraded_grace: Duration,
    /// Keep a second encoder running in parallel (`standby = "hot"`).
    pub hot_standby: bool,
    /// This many failures within `crash_window` is a crash loop. Default
    /// 3 in 30 s.
    pub crash_limit: usize,
    pub crash_window: Duration,
    /// An encoder that produced output this long before it failed does
    /// not count towards a crash loop: it worked, and something killed
    /// it. Default 1 s (one GOP of a typical source).
    pub settled_after: Duration,
    /// First backoff of a crash loop, doubling up to `backoff_max`.
    /// Defaults 1 s and 16 s.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Backoffs in a row (without an encoder that lasted `crash_window`)
    /// before giving up. Default 4.
    pub max_backoffs: u32,
    pub give_up: GiveUp,
    /// A replacement that shows no output in this time is given up on
    /// (counted as a failure). Default 5 s.
    pub ready_timeout: Duration,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        SupervisorSettings {
            degraded_grace: Duration::from_secs(2),
            hot_standby: false,
            crash_limit: 3,
            crash_window: Duration::from_secs(30),
            settled_after: Duration::from_secs(1),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(16),
            max_backoffs: 4,
            give_up: GiveUp::Passthrough,
            ready_timeout: Duration::from_secs(5),
        }
    }
}

/// Why an encoder is being replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveReason {
    /// The active encoder failed; the text is the health reason.
    Failed(String),
    /// Degraded for `degraded_grace` with a healthier encoder available.
    Degraded(String),
}

impl fmt::Display for MoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveReason::Failed(why) => write!(f, "failed: {why}"),
            MoveReason::Degraded(why) => write!(f, "degraded: {why}"),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an encoder (a spare if the pool has one), fed from the ring
    /// buffer's splice point at or before the first frame not yet output.
    Start { id: EncoderId, standby: bool },
    /// Publish `to`'s output from its next usable splice point on.
    SwitchTo { to: EncoderId },
    /// Stop an encoder (SIGTERM, then SIGKILL) and forget it.
    Stop { id: EncoderId },
    /// Give up on encoding: publish the input as it is.
    Passthrough,
    /// Give up on the stream.
    StopStream,
}

/// A decision worth a log line and a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverEvent {
    /// The output moves from `from` to `to`.
    Failover {
        from: EncoderId,
        to: EncoderId,
        reason: MoveReason,
        /// From the first sign of trouble (the health transition that
        /// started it) to the decision to move: 0 for a failure, the
        /// grace for a degraded encoder. (How long the failure itself took
        /// to be seen is the health scorer's: its event says.)
        detection: Duration,
        /// From the decision to the switch: the replacement's start-up (0
        /// with a ready hot standby).
        startup: Duration,
        /// `to` was already running (hot standby or an earlier start).
        warm: bool,
    },
    /// Encoders keep failing: the next start waits this long.
    BackingOff { delay: Duration, failures: usize },
    /// Encoding given up (after `max_backoffs`).
    GaveUp { give_up: GiveUp, failures: usize },
}

#[derive(Debug, Clone)]
struct Encoder {
    id: EncoderId,
    health: HealthState,
    /// Produced output: may be switched to.
    ready: bool,
    /// When it first produced output.
    ready_at: Option<Instant>,
    started: Instant,
    /// When it became degraded (None when healthy).
    degraded_since: Option<Instant>,
    reason: String,
    /// [`Action::Stop`] was sent (a failed encoder is stopped at once).
    stopped: bool,
}

/// See the module docs.
#[derive(Debug)]
pub struct EncoderSupervisor {
    settings: SupervisorSettings,
    next_id: u64,
    /// The published encoder.
    active: Option<Encoder>,
    /// Hot standby, or the replacement being started.
    others: Vec<Encoder>,
    /// A replacement was asked for: switch to it when ready. With the
    /// trouble's start time and reason.
    moving: Option<(EncoderId, Instant, MoveReason)>,
    /// When the move under way was decided.
    decided: Option<Instant>,
    failures: VecDeque<Instant>,
    backoffs: u32,
    backoff_until: Option<Instant>,
    gave_up: bool,
    actions: VecDeque<Action>,
    events: VecDeque<FailoverEvent>,
}

impl EncoderSupervisor {
    /// A supervisor that starts the stream's first encoder (and standby).
    pub fn new(now: Instant, settings: SupervisorSettings) -> EncoderSupervisor {
        let mut s = EncoderSupervisor {
            settings,
            next_id: 0,
            active: None,
            others: Vec::new(),
            moving: None,
            decided: None,
            failures: VecDeque::new(),
            backoffs: 0,
            backoff_until: None,
            gave_up: false,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        let first = s.start(now, false);
        s.active = s.take_other(first);
        s.actions.push_back(Action::SwitchTo { to: first });
        if settings.hot_standby {
            s.start(now, true);
        }
        s
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<FailoverEvent> {
        self.events.pop_front()
    }

    /// The published encoder.
    pub fn active(&self) -> Option<EncoderId> {
        self.active.as_ref().map(|e| e.id)
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    fn start(&mut self, now: Instant, standby: bool) -> EncoderId {
        self.next_id += 1;
        let id = EncoderId(self.next_id);
        self.others.push(Encoder {
            id,
            health: HealthState::Healthy,
            ready: false,
            ready_at: None,
            started: now,
            degraded_since: None,
            reason: String::new(),
            stopped: false,
        });
        self.actions.push_back(Action::Start { id, standby });
        id
    }

    fn take_other(&mut self, id: EncoderId) -> Option<Encoder> {
        let at = self.others.iter().position(|e| e.id == id)?;
        Some(self.others.remove(at))
    }

    fn encoder_mut(&mut self, id: EncoderId) -> Option<&mut Encoder> {
        if let Some(active) = self.active.as_mut().filter(|a| a.id == id) {
            return Some(active);
        }
        self.others.iter_mut().find(|e| e.id == id)
    }

    /// The encoder produced its first output: it can be published.
    pub fn on_ready(&mut self, now: Instant, id: EncoderId) {
        if let Some(e) = self.encoder_mut(id) {
            e.ready = true;
            e.ready_at.get_or_insert(now);
        }
        if let Some((to, since, reason)) = self.moving.clone()
            && to == id
        {
            self.switch(now, to, since, reason, false);
        }
    }

    /// A health transition of one encoder.
    pub fn on_health(&mut self, now: Instant, id: EncoderId, state: HealthState, reason: &str) {
        let is_active = self.active() == Some(id);
        let settled_after = self.settings.settled_after;
        let Some(e) = self.encoder_mut(id) else {
            return;
        };
        let settled = e
            .ready_at
            .is_some_and(|at| now.saturating_duration_since(at) >= settled_after);
        e.health = state;
        e.reason = reason.to_string();
        e.degraded_since = match state {
            HealthState::Degraded => e.degraded_since.or(Some(now)),
            _ => None,
        };
        match (state, is_active) {
            (HealthState::Failed, true) => {
                // A stalled or stopped process still holds CPU and memory:
                // stopped now, though the output stays on it (nothing
                // comes) until the replacement is ready.
                if let Some(active) = self.active.as_mut() {
                    active.stopped = true;
                }
                self.actions.push_back(Action::Stop { id });
                if !settled {
                    self.failure(now);
                }
                self.replace(now, now, MoveReason::Failed(reason.to_string()));
            }
            (HealthState::Failed, false) => {
                // A standby or replacement failed: forget it; a new one
                // is started if needed.
                if !settled {
                    self.failure(now);
                }
                self.drop_other(id);
                if self.moving.as_ref().is_some_and(|(to, _, _)| *to == id)
                    && let Some((_, since, reason)) = self.moving.take()
                {
                    self.replace(now, since, reason);
                } else if self.settings.hot_standby && !self.gave_up {
                    self.start_when_allowed(now, true);
                }
            }
            _ => self.check_degraded(now),
        }
    }

    /// The encoder's process is gone (its health goes Failed too; this is
    /// the same signal for a shell that sees the exit first).
    pub fn on_exited(&mut self, now: Instant, id: EncoderId, status: &str) {
        if self
            .encoder_mut(id)
            .is_some_and(|e| e.health != HealthState::Failed)
        {
            self.on_health(now, id, HealthState::Failed, &format!("exited ({status})"));
        }
    }

    /// When [`EncoderSupervisor::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self.settings.degraded_grace;
        let degraded = self
            .active
            .as_ref()
            .and_then(|a| a.degraded_since)
            .map(|t| t + grace);
        let ready = self
            .moving
            .as_ref()
            .and_then(|(to, _, _)| self.others.iter().find(|e| e.id == *to))
            .map(|e| e.started + self.settings.ready_timeout);
        [degraded, ready, self.backoff_until]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(until) = self.backoff_until
            && now >= until
        {
            self.backoff_until = None;
            if let Some((_, since, reason)) = self.moving.take() {
                self.replace(now, since, reason);
            }
        }
        if let Some((to, since, reason)) = self.moving.clone()
            && self
                .others
                .iter()
                .find(|e| e.id == to)
                .is_some_and(|e| !e.ready && now >= e.started + self.settings.ready_timeout)
        {
            self.failure(now);
            self.drop_other(to);
            self.moving = None;
            self.replace(now, since, reason);
        }
        self.check_degraded(now);
    }

    /// Degraded active encoder past its grace, with somewhere better to go.
    fn check_degraded(&mut self, now: Instant) {
        if self.moving.is_some() || self.gave_up {
            return;
        }
        let Some(active) = self.active.as_ref() else {
            return;
        };
        let Some(since) = active.degraded_since else {
            return;
        };
        if now < since + self.settings.degraded_grace {
            return;
        }
        let reason = MoveReason::Degraded(active.reason.clone());
        self.replace(now, since, reason);
    }

    fn failure(&mut self, now: Instant) {
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.settings.crash_window)
        {
            self.failures.pop_front();
        }
    }

    fn drop_other(&mut self, id: EncoderId) {
        if self.take_other(id).is_some() {
            self.actions.push_back(Action::Stop { id });
        }
    }

    /// Moves the output off the active encoder: to a ready healthy standby
    /// at once, else to a new encoder once it is ready.
    fn replace(&mut self, now: Instant, since: Instant, reason: MoveReason) {
        if self.gave_up {
            return;
        }
        self.decided.get_or_insert(now);
        if let Some(ready) = self
            .others
            .iter()
            .find(|e| e.ready && e.health == HealthState::Healthy)
            .map(|e| e.id)
        {
            self.switch(now, ready, since, reason, true);
            return;
        }
        if let Some(to) = self
            .others
            .iter()
            .find(|e| e.health == HealthState::Healthy)
            .map(|e| e.id)
        {
            // A replacement is starting already: wait for it.
            self.moving = Some((to, since, reason));
            return;
        }
        if self.failures.len() >= self.settings.crash_limit {
            if self.backoff_until.is_some() {
                self.moving_without_target(since, reason);
                return;
            }
            if self.backoffs >= self.settings.max_backoffs {
                self.give_up();
                return;
            }
            let delay = self
                .settings
                .backoff_min
                .saturating_mul(1 << self.backoffs.min(16))
                .min(self.settings.backoff_max);
            self.backoffs += 1;
            self.backoff_until = Some(now + delay);
            self.events.push_back(FailoverEvent::BackingOff {
                delay,
                failures: self.failures.len(),
            });
            self.failures.clear();
            self.moving_without_target(since, reason);
            return;
        }
        let id = self.start(now, false);
        self.moving = Some((id, since, reason));
    }

    /// Remembers that a move is wanted once the backoff ends.
    fn moving_without_target(&mut self, since: Instant, reason: MoveReason) {
        // The id is a placeholder: `handle_timeout` restarts the move.
        self.moving = Some((EncoderId(0), since, reason));
    }

    fn switch(
        &mut self,
        now: Instant,
        to: EncoderId,
        since: Instant,
        reason: MoveReason,
        warm: bool,
    ) {
        let Some(next) = self.take_other(to) else {
            return;
        };
        let old = self.active.replace(next);
        self.moving = None;
        self.actions.push_back(Action::SwitchTo { to });
        if let Some(old) = old {
            if !old.stopped {
                self.actions.push_back(Action::Stop { id: old.id });
            }
            // An encoder that lasted the crash window ends a crash loop.
            if now.saturating_duration_since(old.started) >= self.settings.crash_window {
                self.backoffs = 0;
            }
            let decided = self.decided.take().unwrap_or(now);
            self.events.push_back(FailoverEvent::Failover {
                from: old.id,
                to,
                reason,
                detection: decided.saturating_duration_since(since),
                startup: now.saturating_duration_since(decided),
                warm,
            });
        }
        if self.settings.hot_standby && self.others.is_empty() {
            self.start(now, true);
        }
    }

    fn give_up(&mut self) {
        self.gave_up = true;
        self.moving = None;
        let ids: Vec<EncoderId> = self
            .active
            .take()
            .into_iter()
            .chain(self.others.drain(..))
            .filter(|e| !e.stopped)
            .map(|e| e.id)
            .collect();
        for id in ids {
            self.actions.push_back(Action::Stop { id });
        }
        self.actions.push_back(match self.settings.give_up {
            GiveUp::Passthrough => Action::Passthrough,
            GiveUp::Stop => Action::StopStream,
        });
        self.events.push_back(FailoverEvent::GaveUp {
            give_up: self.settings.give_up,
            failures: self.failures.len(),
        });
    }

    fn start_when_allowed(&mut self, now: Instant, standby: bool) {
        if self.backoff_until.is_none() {
            self.start(now, standby);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn drain(s: &mut EncoderSupervisor) -> Vec<Action> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_one_encoder_and_moves_off_a_failed_one() {
        let t0 = Instant::now();
        let mut s = EncoderSupervisor::new(t0, SupervisorSettings::default());
        assert_eq!(
            drain(&mut s),
            [
                Action::Start {
                    id: EncoderId(1),
                    standby: false
                },
                Action::SwitchTo { to: EncoderId(1) }
            ]
        );
        s.on_ready(t0 + ms(200), EncoderId(1));
        assert_eq!(s.active(), Some(EncoderId(1)));
        s.on_health(t0 + ms(5000), EncoderId(1), HealthState::Failed, "stalled");
        assert_eq!(
            drain(&mut s),
            [
                Action::Stop { id: EncoderId(1) },
                Action::Start {
                    id: EncoderId(2),
                    standby: false
                }
            ]
        );
        s.on_ready(t0 + ms(5300), EncoderId(2));
        assert_eq!(drain(&mut s), [Action::SwitchTo { to: EncoderId(2) }]);
        let event = s.poll_event().unwrap();
        let FailoverEvent::Failover {
            from,
            to,
            detection,
            startup,
            warm,
            ..
        } = event
        else {
            panic!("{event:?}")
        };
        assert_eq!((from, to, warm), (EncoderId(1), EncoderId(2), false));
        assert_eq!((detection, startup), (Duration::ZERO, ms(300)));
    }

    #[test]
    fn hot_standby_takes_over_at_once_and_is_replaced() {
        let t0 = Instant::now();
        let settings = SupervisorSettings {
            hot_standby: true,
            ..SupervisorSettings::default()
        };
        let mut s = EncoderSupervisor::new(t0, settings);
        assert_eq!(drain(&mut s).len(), 3);
        s.on_ready(t0 + ms(100), EncoderId(1));
        s.on_ready(t0 + ms(120), EncoderId(2));
        s.on_health(t0 + ms(900), EncoderId(1), HealthState::Failed, "exited");
        assert_eq!(
            drain(&mut s),
            [
                Action::Stop { id: EncoderId(1) },
                Action::SwitchTo { to: EncoderId(2) },
                Action::Start {
                    id: EncoderId(3),
                    standby: true
                }
            ]
        );
        assert!(matches!(
            s.poll_event(),
            Some(FailoverEvent::Failover {
                warm: true,
                detection,
                ..
            }) if detection == Duration::ZERO
        ));
    }

    #[test]
    fn degraded_moves_only_after_the_grace() {
        let t0 = Instant::now();
        let mut s = EncoderSupervisor::new(t0, SupervisorSettings::default());
        drain(&mut s);
        s.on_ready(t0, EncoderId(1));
        s.on_health(t0 + ms(1000), EncoderId(1), HealthState::Degraded, "slow");
        assert_eq!(s.poll_timeout(), Some(t0 + ms(3000)));
        s.handle_timeout(t0 + ms(2999));
        assert!(drain(&mut s).is_empty());
        // Recovering inside the grace cancels it.
        s.on_health(t0 + ms(2500), EncoderId(1), HealthState::Healthy, "");
        s.handle_timeout(t0 + ms(3000));
        assert!(drain(&mut s).is_empty());
        s.on_health(t0 + ms(4000), EncoderId(1), HealthState::Degraded, "slow");
        s.handle_timeout(t0 + ms(6000));
        assert_eq!(
            drain(&mut s),
            [Action::Start {
                id: EncoderId(2),
                standby: false
            }]
        );
        s.on_ready(t0 + ms(6200), EncoderId(2));
        assert!(matches!(
            s.poll_event(),
            Some(FailoverEvent::Failover { reason: MoveReason::Degraded(_), detection, startup, .. })
                if detection == ms(2000) && startup == ms(200)
        ));
    }

    #[test]
    fn a_crash_loop_backs_off_then_falls_back_to_passthrough() {
        let t0 = Instant::now();
        let settings = SupervisorSettings::default();
        let mut s = EncoderSupervisor::new(t0, settings);
        let mut now = t0;
        let mut backoffs = Vec::new();
        let mut gave_up = false;
        for _ in 0..40 {
            for action in drain(&mut s) {
                match action {
                    Action::Start { id, .. } => {
                        // Every encoder dies right after it starts.
                        now += ms(100);
                        s.on_exited(now, id, "exit status 1");
                    }
                    Action::Passthrough => gave_up = true,
                    _ => {}
                }
            }
            while let Some(e) = s.poll_event() {
                if let FailoverEvent::BackingOff { delay, .. } = e {
                    backoffs.push(delay);
                }
            }
            if let Some(t) = s.poll_timeout() {
                now = now.max(t);
                s.handle_timeout(now);
            }
            if gave_up {
                break;
            }
        }
        assert!(gave_up && s.gave_up());
        assert_eq!(
            backoffs,
            [ms(1000), ms(2000), ms(4000), ms(8000)],
            "exponential, then give up"
        );
    }

    /// Runs `kills` encoders that each produce output for `runs_for` and
    /// are then killed; returns the backoffs seen.
    fn kill_after_running(runs_for: Duration, kills: usize) -> (Vec<Duration>, bool) {
        let t0 = Instant::now();
        let mut s = EncoderSupervisor::new(t0, SupervisorSettings::default());
        let mut now = t0;
        let mut backoffs = Vec::new();
        let mut killed = 0;
        while killed < kills && !s.gave_up() {
            let actions = drain(&mut s);
            if actions.is_empty() {
                // Only a timer is left: the backoff.
                let Some(t) = s.poll_timeout() else { break };
                now = now.max(t);
                s.handle_timeout(now);
            }
            for action in actions {
                if let Action::Start { id, .. } = action {
                    now += ms(100);
                    s.on_ready(now, id);
                    now += runs_for;
                    s.on_exited(now, id, "signal 9");
                    killed += 1;
                }
            }
            while let Some(e) = s.poll_event() {
                if let FailoverEvent::BackingOff { delay, .. } = e {
                    backoffs.push(delay);
                }
            }
        }
        (backoffs, s.gave_up())
    }

    #[test]
    fn encoders_killed_after_settling_are_no_crash_loop() {
        // 20 kills 1.2 s apart (issue 4 point 8): each encoder worked.
        let (backoffs, gave_up) = kill_after_running(ms(1100), 20);
        assert!(backoffs.is_empty() && !gave_up, "{backoffs:?}");
        // Dying 0.5 s after its first output is still a crash loop.
        let (backoffs, gave_up) = kill_after_running(ms(500), 40);
        assert!(!backoffs.is_empty() && gave_up, "{backoffs:?}");
    }

    #[test]
    fn a_replacement_that_never_produces_output_is_replaced() {
        let t0 = Instant::now();
        let mut s = EncoderSupervisor::new(t0, SupervisorSettings::default());
        drain(&mut s);
        s.on_ready(t0, EncoderId(1));
        s.on_health(t0 + ms(10), EncoderId(1), HealthState::Failed, "stalled");
        drain(&mut s);
        s.handle_timeout(t0 + ms(10) + ms(5000));
        assert_eq!(
            drain(&mut s),
            [
                Action::Stop { id: EncoderId(2) },
                Action::Start {
                    id: EncoderId(3),
                    standby: false
                }
            ]
        );
    }
}
