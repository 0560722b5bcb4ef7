//! A deadline timer with microsecond resolution, for tasks that sleep until
//! a sans-IO core's `poll_timeout`.
//!
//! tokio's timer wheel ticks once a millisecond and rounds every deadline
//! up to the next tick. The SRT port task sleeps until srt-protocol's next
//! TSBPD release time, which is exact to the microsecond (packet
//! timestamps are microseconds, SRT RFC draft §3), so on tokio's timer
//! every packet reached its stream 0–1 ms late. A Linux `timerfd` on `CLOCK_MONOTONIC`,
//! armed with an absolute expiry, fires at the deadline itself (an hrtimer;
//! timer slack does not apply to timerfds), and tokio's reactor waits for
//! it like for any socket.
//!
//! Costs, measured on the 2-core machine of DESIGN.md: waking a task on a timer
//! costs ~25 µs of CPU in tokio's multi-thread runtime whichever timer it
//! is (tokio's own 26.6 µs, this one 24.5 µs, each in a loop of 100 µs
//! sleeps); the timerfd's syscalls are small beside that. So the timer
//! saves wake-ups rather than calls:
//!
//! - It re-arms (`timerfd_settime`) whenever the deadline differs from the
//!   one armed. Leaving an earlier expiry armed for a later deadline would
//!   cost a wake-up that finds nothing to do; in the SRT port at 8 streams
//!   that was up to ~150 wake-ups a second.
//! - An expiry that passed while the task was busy elsewhere (in the SRT
//!   port: a datagram for the connection came as its release fell due, and
//!   released it) is read at once, before epoll reports it: up to a third
//!   of all expiries at 8 streams.
//! - Reading an expiry clears it, so a fire is one `read`.
//!
//! If no timerfd can be created (or one fails later), the timer falls back
//! to tokio's, logs that once, and keeps working with 1 ms granularity.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Once;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Sleeps until an [`Instant`] with microsecond precision (see the module
/// docs). One per task; the waiting future is cancel-safe, so it can be a
/// `select!` arm that is dropped and made again on every loop.
#[derive(Debug)]
pub struct PreciseTimer {
    clock: Clock,
}

#[derive(Debug)]
enum Clock {
    TimerFd(TimerFdClock),
    /// tokio's timer wheel, 1 ms granularity.
    Tokio,
}

#[derive(Debug)]
struct TimerFdClock {
    fd: AsyncFd<MonotonicTimerFd>,
    /// The expiry programmed into the timerfd and not yet read back.
    armed: Option<Instant>,
    /// Expiries read, for tests: a wait that fires more than once spins.
    expiries: u64,
}

/// `AsyncFd` needs `AsRawFd`, which nix's `TimerFd` only has as `AsFd`.
#[derive(Debug)]
struct MonotonicTimerFd(TimerFd);

impl AsRawFd for MonotonicTimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl PreciseTimer {
    /// A disarmed timer. Must be called inside a tokio runtime, whose
    /// reactor the timerfd registers with.
    pub fn new() -> PreciseTimer {
        let clock = match TimerFdClock::new() {
            Ok(clock) => Clock::TimerFd(clock),
            Err(e) => {
                fall_back(&e);
                Clock::Tokio
            }
        };
        PreciseTimer { clock }
    }

    /// False when it fell back to tokio's millisecond timer.
    pub fn is_precise(&self) -> bool {
        matches!(self.clock, Clock::TimerFd(_))
    }

    /// Returns once `Instant::now() >= deadline` (at once if it already
    /// is); never returns for `None`. Cancel-safe: what is armed stays
    /// armed for the next call.
    pub async fn wait_until(&mut self, deadline: Option<Instant>) {
        if let Clock::TimerFd(clock) = &mut self.clock {
            match clock.wait_until(deadline).await {
                Ok(()) => return,
                Err(e) => {
                    fall_back(&e);
                    self.clock = Clock::Tokio;
                }
            }
        }
        super::sleep_until(deadline.map(tokio::time::Instant::from_std)).await;
    }
}

impl Default for PreciseTimer {
    fn default() -> PreciseTimer {
        PreciseTimer::new()
    }
}

impl TimerFdClock {
    fn new() -> io::Result<TimerFdClock> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // tokio 1.54 deprecated this safe constructor for
        // `register_with_interest`, which is `unsafe` (forbidden here)
        // because an arbitrary `AsRawFd` could close or swap its fd while
        // registered. `MonotonicTimerFd` owns its fd (nix's `TimerFd` holds
        // an `OwnedFd`), never replaces it and always returns the same one,
        // which is the whole of that contract.
        #[expect(
            deprecated,
            reason = "sound for an owned fd that is never replaced; the replacement is unsafe"
        )]
        let fd = AsyncFd::with_interest(MonotonicTimerFd(fd), Interest::READABLE)?;
        Ok(TimerFdClock {
            fd,
            armed: None,
            expiries: 0,
        })
    }

    /// `Ok` at the deadline; an error means the timerfd is unusable.
    async fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let Some(deadline) = deadline else {
            if self.armed.take().is_some() {
                self.fd.get_ref().0.unset()?;
            }
            return std::future::pending().await;
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                // Whatever is armed stays armed for the next call to re-arm
                // or read.
                return Ok(());
            }
            // Expired while the task was busy elsewhere: reading it now,
            // before epoll reports it, costs a read instead of a wake-up
            // that finds nothing to do.
            if self.armed.is_some_and(|at| at <= now) {
                match self.fd.get_ref().0.wait() {
                    Ok(()) => self.expired(),
                    // The expiry is a few nanoseconds later than `at`.
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if self.armed != Some(deadline) {
                let expiry = monotonic_expiry(now, deadline)?;
                self.fd.get_ref().0.set(
                    Expiration::OneShot(expiry),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                )?;
                self.armed = Some(deadline);
            }
            let mut ready = self.fd.readable_mut().await?;
            // A spurious readiness (the expiry was read, or re-armed, since
            // it was reported) reads EAGAIN, which clears it.
            if let Ok(read) = ready.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from)) {
                read?;
                // The read took every expiry and nothing is armed until the
                // next `set`, whose expiry is a new edge: clearing here saves
                // the read that would otherwise find EAGAIN.
                ready.clear_ready();
                self.expired();
            }
        }
    }

    fn expired(&mut self) {
        self.armed = None;
        self.expiries += 1;
    }
}

/// `deadline` on `CLOCK_MONOTONIC`, as an absolute expiry. std's `Instant`
/// is that clock on Linux, but its representation is private, so the
/// distance from `now` is added to a reading of the clock taken after
/// `now`: the gap between the two readings makes the expiry late by
/// nanoseconds, never early.
fn monotonic_expiry(now: Instant, deadline: Instant) -> nix::Result<TimeSpec> {
    let clock = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    Ok(clock + TimeSpec::from_duration(deadline.saturating_duration_since(now)))
}

fn fall_back(error: &io::Error) {
    static LOGGED: Once = Once::new();
    LOGGED.call_once(|| {
        tracing::warn!(
            "no timerfd ({error}): SRT packets are released on tokio's 1 ms timer, \
             up to 1 ms late"
        );
    });
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    const GUARD: Duration = Duration::from_secs(2);

    /// What the kernel has armed, read back with `timerfd_gettime`.
    fn kernel_expiry(timer: &PreciseTimer) -> Option<Expiration> {
        clock(timer).fd.get_ref().0.get().expect("timerfd_gettime")
    }

    fn clock(timer: &PreciseTimer) -> &TimerFdClock {
        match &timer.clock {
            Clock::TimerFd(clock) => clock,
            Clock::Tokio => panic!("no timerfd"),
        }
    }

    /// Polls `wait_until(deadline)` once and drops it, as a `select!` does
    /// when another arm wins. (`timeout(Duration::ZERO, …)` would not do:
    /// tokio's timer rounds its zero up to the next millisecond tick.)
    async fn poll_once(timer: &mut PreciseTimer, deadline: Option<Instant>) {
        let mut wait = std::pin::pin!(timer.wait_until(deadline));
        std::future::poll_fn(|cx| {
            let _ = wait.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
    }

    /// Generous: these tests check that the timer fires and is not early;
    /// precision is [`is_late_by_far_less_than_tokio_s_tick`]'s, which
    /// holds on a loaded machine too.
    const LATE_AT_MOST: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn fires_at_the_deadline_not_before() {
        let mut timer = PreciseTimer::new();
        assert!(timer.is_precise(), "no timerfd on Linux");
        let deadline = Instant::now() + Duration::from_micros(300);
        tokio::time::timeout(GUARD, timer.wait_until(Some(deadline)))
            .await
            .expect("never fired");
        let late = Instant::now().checked_duration_since(deadline);
        let late = late.expect("returned before its deadline");
        assert!(late < LATE_AT_MOST, "{late:?} late");
        // More would be an expiry computed early, and re-armed in a spin.
        assert_eq!(clock(&timer).expiries, 1);
    }

    /// The reason this module exists: back to back, each 100 µs sleep on
    /// tokio's timer ends at the next millisecond tick, ~0.9 ms late. The
    /// best of 21 is asserted, not a typical one: on a loaded machine any
    /// single wake-up can wait for a core, but a timer that rounds to
    /// ticks is never early for the tick.
    #[tokio::test]
    async fn is_late_by_far_less_than_tokio_s_tick() {
        let mut timer = PreciseTimer::new();
        let mut lateness: Vec<Duration> = Vec::new();
        for _ in 0..21 {
            let deadline = Instant::now() + Duration::from_micros(100);
            timer.wait_until(Some(deadline)).await;
            lateness.push(Instant::now() - deadline);
        }
        lateness.sort();
        let best = lateness[0];
        assert!(
            best < Duration::from_micros(300),
            "at best {best:?} late: {lateness:?}"
        );
    }

    #[tokio::test]
    async fn rearms_for_an_earlier_deadline() {
        let mut timer = PreciseTimer::new();
        poll_once(&mut timer, Some(Instant::now() + Duration::from_secs(60))).await;
        let near = Instant::now() + Duration::from_micros(300);
        tokio::time::timeout(GUARD, timer.wait_until(Some(near)))
            .await
            .expect("still armed for the later deadline");
        let late = Instant::now() - near;
        assert!(late < LATE_AT_MOST, "{late:?} late");
    }

    /// Leaving the earlier expiry armed would cost a wake-up for nothing.
    #[tokio::test]
    async fn rearms_for_a_later_deadline() {
        let mut timer = PreciseTimer::new();
        let start = Instant::now();
        poll_once(&mut timer, Some(start + Duration::from_millis(1))).await;
        let later = start + Duration::from_millis(30);
        poll_once(&mut timer, Some(later)).await;
        let Some(Expiration::OneShot(left)) = kernel_expiry(&timer) else {
            panic!("not armed");
        };
        let left = Duration::from(left);
        assert!(left > Duration::from_millis(10), "armed for {left:?} on");
        tokio::time::timeout(GUARD, timer.wait_until(Some(later)))
            .await
            .expect("never fired");
        assert!(Instant::now() >= later, "returned at the earlier expiry");
    }

    /// An expiry that passed unread while the task did something else must
    /// neither end the next, later wait early nor leave the timer stuck.
    #[tokio::test]
    async fn an_expiry_that_passed_unread_is_consumed() {
        let mut timer = PreciseTimer::new();
        poll_once(
            &mut timer,
            Some(Instant::now() + Duration::from_micros(100)),
        )
        .await;
        std::thread::sleep(Duration::from_millis(1));
        for gap in [300, 600] {
            let deadline = Instant::now() + Duration::from_micros(gap);
            tokio::time::timeout(GUARD, timer.wait_until(Some(deadline)))
                .await
                .expect("never fired");
            let late = Instant::now().checked_duration_since(deadline);
            let late = late.expect("returned before its deadline");
            assert!(late < LATE_AT_MOST, "{late:?} late");
        }
    }

    #[tokio::test]
    async fn none_disarms() {
        let mut timer = PreciseTimer::new();
        poll_once(&mut timer, Some(Instant::now() + Duration::from_millis(1))).await;
        assert!(kernel_expiry(&timer).is_some());
        poll_once(&mut timer, None).await;
        assert_eq!(kernel_expiry(&timer), None);
        let waited = tokio::time::timeout(Duration::from_millis(20), timer.wait_until(None)).await;
        assert!(waited.is_err(), "returned with no deadline");
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once() {
        let mut timer = PreciseTimer::new();
        let past = Instant::now();
        tokio::time::timeout(GUARD, timer.wait_until(Some(past)))
            .await
            .expect("a past deadline did not return");
    }
}
