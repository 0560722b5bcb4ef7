//! The retry schedule of a failing output: a pure state, told when a
//! session came up and when it failed, with `now` passed in.

use std::time::{Duration, Instant};

use crate::config;

/// Exponential backoff from `min`, doubling up to `max`; a session that
/// stayed up for [`Backoff::STABLE_AFTER`] resets it to `min`, so one drop
/// of a long-lived connection is retried at once while a receiver that
/// accepts and then drops every connection is not hammered.
///
/// No jitter: each output has its own receiver, so there is no herd of
/// clients to spread out, and a deterministic schedule is what an operator
/// reading the log expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    stable_after: Duration,
    next: Duration,
    up_since: Option<Instant>,
}

impl Backoff {
    /// How long a session must stay up before its failure counts as a
    /// fresh start.
    pub const STABLE_AFTER: Duration = Duration::from_secs(10);

    /// The shortest delay used whatever the configuration says: a zero
    /// delay would turn a permanently failing output into a busy loop.
    const FLOOR: Duration = Duration::from_millis(1);

    pub fn new(config: config::Backoff) -> Backoff {
        let min = config.min.max(Self::FLOOR);
        let max = config.max.max(min);
        Backoff {
            min,
            max,
            stable_after: Self::STABLE_AFTER,
            next: min,
            up_since: None,
        }
    }

    /// The same schedule with another stability period (tests, and outputs
    /// whose sessions are naturally short).
    pub fn with_stable_after(mut self, stable_after: Duration) -> Backoff {
        self.stable_after = stable_after;
        self
    }

    /// A session came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// An attempt or a session failed at `now`: the delay before the next
    /// attempt.
    pub fn failed(&mut self, now: Instant) -> Duration {
        if let Some(up) = self.up_since.take()
            && now.saturating_duration_since(up) >= self.stable_after
        {
            self.next = self.min;
        }
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// The delay [`Backoff::failed`] would return if the current session
    /// (if any) failed young.
    pub fn peek(&self) -> Duration {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn backoff(min: u64, max: u64) -> Backoff {
        Backoff::new(config::Backoff {
            min: ms(min),
            max: ms(max),
        })
    }

    #[test]
    fn doubles_from_min_to_max() {
        let now = Instant::now();
        let mut b = backoff(250, 10_000);
        let delays: Vec<u64> = (0..9).map(|_| b.failed(now).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn a_short_session_does_not_reset() {
        let t0 = Instant::now();
        let mut b = backoff(100, 1000);
        assert_eq!(b.failed(t0), ms(100));
        assert_eq!(b.failed(t0), ms(200));
        b.connected(t0);
        // Up for 9.9 s: the receiver accepts and drops; keep backing off.
        assert_eq!(b.failed(t0 + ms(9_900)), ms(400));
        assert_eq!(b.peek(), ms(800));
    }

    #[test]
    fn a_stable_session_resets_to_min() {
        let t0 = Instant::now();
        let mut b = backoff(100, 1000);
        for _ in 0..6 {
            b.failed(t0);
        }
        assert_eq!(b.peek(), ms(1000));
        b.connected(t0);
        assert_eq!(b.failed(t0 + Backoff::STABLE_AFTER), ms(100));
        assert_eq!(b.failed(t0 + Backoff::STABLE_AFTER), ms(200));
        // A failed attempt is not a session: no reset without `connected`.
        assert_eq!(b.failed(t0 + ms(60_000)), ms(400));
    }

    #[test]
    fn custom_stability_period() {
        let t0 = Instant::now();
        let mut b = backoff(10, 80).with_stable_after(ms(50));
        b.failed(t0);
        b.failed(t0);
        b.connected(t0);
        assert_eq!(b.failed(t0 + ms(50)), ms(10));
    }

    #[test]
    fn degenerate_configurations_stay_sane() {
        let now = Instant::now();
        let mut zero = backoff(0, 0);
        assert_eq!(zero.failed(now), Backoff::FLOOR);
        assert_eq!(zero.failed(now), Backoff::FLOOR);
        // max below min: min wins (the config checker refuses it anyway).
        let mut inverted = backoff(500, 100);
        assert_eq!(inverted.failed(now), ms(500));
        assert_eq!(inverted.failed(now), ms(500));
        let mut huge = Backoff::new(config::Backoff {
            min: Duration::MAX / 2,
            max: Duration::MAX,
        });
        huge.failed(now);
        huge.failed(now);
        assert_eq!(huge.failed(now), Duration::MAX);
    }
}
