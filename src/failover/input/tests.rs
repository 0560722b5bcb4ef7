//! Input failover over the committed captures, with a simulated clock.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::probe::Report;
use crate::ring::testing::{pid, probe};
use crate::splice::testing::{A, CLOSED_GOP, Recipe, source, timed};

type Feed = Vec<(Duration, InputRole, Bytes)>;

/// An input made of a looped capture, cut into 7-packet datagrams, with
/// `keep` deciding (by arrival time) which datagrams arrive.
fn input(role: InputRole, r: Recipe, start: Duration, keep: impl Fn(Duration) -> bool) -> Feed {
    let packets = timed(source(CLOSED_GOP, r), A, start, r);
    packets
        .chunks(7)
        .filter(|c| keep(c[0].0))
        .map(|c| {
            let bytes: Vec<u8> = c.iter().flat_map(|(_, _, p)| p.to_vec()).collect();
            (c[0].0, role, Bytes::from(bytes))
        })
        .collect()
}

fn main_recipe() -> Recipe {
    Recipe::new(5)
}

fn backup_recipe() -> Recipe {
    Recipe {
        shift: 3_000_000_000,
        ..Recipe::new(5)
    }
}

struct Outcome {
    out: Vec<Bytes>,
    events: Vec<(Duration, InputEvent)>,
    switch: InputSwitch,
}

/// Pushes the datagrams in time order, running timers as they fall due,
/// and then the timers up to `end`.
fn drive(settings: InputSettings, mut feed: Feed, end: Duration) -> Outcome {
    feed.sort_by_key(|(t, _, _)| *t);
    let t0 = Instant::now();
    let mut switch = InputSwitch::new(settings);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let collect = |switch: &mut InputSwitch, at: Instant| {
        let mut got = Vec::new();
        while let Some(e) = switch.poll_event() {
            got.push((at - t0, e));
        }
        got
    };
    for (t, role, datagram) in feed {
        while let Some(at) = switch.poll_timeout().filter(|at| *at <= t0 + t) {
            switch.handle_timeout(at, &mut out);
            events.extend(collect(&mut switch, at));
        }
        switch.push(t0 + t, role, datagram, &mut out);
        events.extend(collect(&mut switch, t0 + t));
    }
    while let Some(at) = switch.poll_timeout().filter(|at| *at <= t0 + end) {
        switch.handle_timeout(at, &mut out);
        events.extend(collect(&mut switch, at));
    }
    Outcome {
        out,
        events,
        switch,
    }
}

fn assert_valid(out: &[Bytes]) -> Report {
    let report = probe(out);
    assert_eq!(report.cc_errors, 0, "{report}");
    assert_eq!(report.psi_changes, 0, "{report}");
    let video = report.video.as_ref().unwrap();
    assert_eq!(video.frames_before_first_idr, 0);
    assert_eq!(
        (
            video.pts_backwards,
            video.duplicate_pts,
            video.dts_backwards
        ),
        (0, 0, 0),
        "{report}"
    );
    for audio in &report.audio {
        assert_eq!(
            (audio.pts_backwards, audio.duplicate_pts),
            (0, 0),
            "{report}"
        );
    }
    report
}

fn switches(
    events: &[(Duration, InputEvent)],
) -> Vec<(
    Duration,
    Option<InputRole>,
    InputRole,
    SwitchReason,
    Duration,
)> {
    events
        .iter()
        .filter_map(|(t, e)| match e {
            InputEvent::Switched {
                from,
                to,
                reason,
                gap,
                ..
            } => Some((*t, *from, *to, *reason, *gap)),
            _ => None,
        })
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn main_stops_and_the_backup_takes_over_at_its_idr() {
    let mut feed = input(InputRole::Main, main_recipe(), Duration::ZERO, |t| {
        t < secs(5.3)
    });
    feed.extend(input(InputRole::Backup, backup_recipe(), secs(0.2), |_| {
        true
    }));
    let o = drive(InputSettings::default(), feed, secs(21.0));
    let s = switches(&o.events);
    assert_eq!(s.len(), 2, "{:#?}", o.events);
    assert_eq!(
        (s[0].1, s[0].2, s[0].3),
        (None, InputRole::Main, SwitchReason::Start)
    );
    let (at, from, to, reason, gap) = s[1];
    assert_eq!(
        (from, to, reason),
        (
            Some(InputRole::Main),
            InputRole::Backup,
            SwitchReason::MainTimeout
        )
    );
    // Lost 0.5 s after the last datagram, switched at the next IDR (GOPs
    // of 1 s).
    assert!(o.events.iter().any(|(t, e)| *e
        == InputEvent::InputLost {
            role: InputRole::Main,
            reason: LossReason::Timeout
        }
        && *t >= secs(5.75)
        && *t <= secs(5.81)));
    assert!(gap <= secs(0.5 + 1.0 + 0.05), "gap {gap:?}");
    assert!(at <= secs(5.3 + 0.5 + 1.05), "at {at:?}");
    assert_valid(&o.out);
    assert_eq!(o.switch.active(), Some(InputRole::Backup));
}

#[test]
fn main_comes_back_and_the_output_reverts_after_revert_after() {
    let mut feed = input(InputRole::Main, main_recipe(), Duration::ZERO, |t| {
        t < secs(3.0) || t >= secs(4.0)
    });
    feed.extend(input(InputRole::Backup, backup_recipe(), secs(0.2), |_| {
        true
    }));
    let o = drive(InputSettings::default(), feed, secs(21.0));
    let s = switches(&o.events);
    assert_eq!(s.len(), 3, "{:#?}", o.events);
    assert_eq!(
        (s[1].2, s[1].3),
        (InputRole::Backup, SwitchReason::MainTimeout)
    );
    let (at, _, to, reason, _) = s[2];
    assert_eq!((to, reason), (InputRole::Main, SwitchReason::Revert));
    // Healthy from 4.0 s; revert requested at 14.0 s, taken at the next
    // IDR of the main.
    assert!(at >= secs(14.0) && at <= secs(15.1), "revert at {at:?}");
    assert!(o.events.iter().any(|(_, e)| *e
        == InputEvent::InputRecovered {
            role: InputRole::Main
        }));
    assert_valid(&o.out);
    ffmpeg_decodes(&o.out);
}

#[test]
fn a_flapping_main_does_not_flap_the_output() {
    // The main drops out for 0.7 s every 2 s.
    let flapping = |t: Duration| t.as_secs_f64() % 2.0 < 1.3;
    let mut feed = input(InputRole::Main, main_recipe(), Duration::ZERO, flapping);
    feed.extend(input(InputRole::Backup, backup_recipe(), secs(0.2), |_| {
        true
    }));
    let o = drive(InputSettings::default(), feed, secs(21.0));
    let s = switches(&o.events);
    assert_eq!(s.len(), 2, "{s:#?}");
    assert_eq!(s[1].2, InputRole::Backup);
    let losses = o
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                InputEvent::InputLost {
                    role: InputRole::Main,
                    ..
                }
            )
        })
        .count();
    assert!(losses >= 8, "{losses}");
    assert_valid(&o.out);
}

#[test]
fn a_cc_burst_on_the_main_switches_to_the_backup() {
    // From 2 s on, every fifth datagram of the main is lost.
    let r = main_recipe();
    let packets = timed(source(CLOSED_GOP, r), A, Duration::ZERO, r);
    let mut feed: Feed = packets
        .chunks(7)
        .enumerate()
        .filter(|(i, c)| c[0].0 < secs(2.0) || i % 5 != 0)
        .map(|(_, c)| {
            let bytes: Vec<u8> = c.iter().flat_map(|(_, _, p)| p.to_vec()).collect();
            (c[0].0, InputRole::Main, Bytes::from(bytes))
        })
        .collect();
    feed.extend(input(InputRole::Backup, backup_recipe(), secs(0.2), |_| {
        true
    }));
    let o = drive(InputSettings::default(), feed, secs(21.0));
    let s = switches(&o.events);
    assert_eq!(s.len(), 2, "{:#?}", o.events);
    assert_eq!(
        (s[1].2, s[1].3),
        (InputRole::Backup, SwitchReason::MainCcBurst)
    );
    assert!(s[1].0 < secs(4.0));
    assert_valid(&o.out);
}

#[test]
fn without_a_backup_the_main_is_lost_and_nothing_switches() {
    let feed = input(InputRole::Main, main_recipe(), Duration::ZERO, |t| {
        t < secs(3.0)
    });
    let o = drive(InputSettings::default(), feed, secs(10.0));
    assert_eq!(switches(&o.events).len(), 1);
    assert!(o.events.iter().any(|(_, e)| *e
        == InputEvent::InputLost {
            role: InputRole::Main,
            reason: LossReason::Timeout
        }));
    assert_eq!(o.switch.active(), Some(InputRole::Main));
    assert_eq!(o.switch.poll_timeout(), None);
    assert_valid(&o.out);
}

#[test]
fn a_lone_backup_is_carried() {
    let feed = input(InputRole::Backup, backup_recipe(), Duration::ZERO, |t| {
        t < secs(3.0)
    });
    let o = drive(InputSettings::default(), feed, secs(4.0));
    let s = switches(&o.events);
    assert_eq!(
        (s[0].2, s[0].3),
        (InputRole::Backup, SwitchReason::MainAbsent)
    );
    assert_valid(&o.out);
}

#[test]
fn a_single_input_passes_through_and_partial_datagrams_are_counted() {
    let mut feed = input(InputRole::Main, Recipe::new(1), Duration::ZERO, |_| true);
    let (t, role, last) = feed.pop().unwrap();
    let mut bytes = last.to_vec();
    bytes.extend_from_slice(&[0x47; 100]);
    feed.push((t, role, Bytes::from(bytes)));
    let o = drive(InputSettings::default(), feed, secs(4.0));
    let stats = o.switch.stats();
    assert_eq!((stats.partial_datagrams, stats.partial_bytes), (1, 100));
    assert_eq!(stats.splice.rewritten, 0);
    assert!(o.out.iter().all(|p| p.len() == 188 && pid(p) != 0x1FFF));
    assert_valid(&o.out);
}

#[test]
fn removing_the_carried_main_switches_to_the_backup() {
    let mut feed = input(InputRole::Main, main_recipe(), Duration::ZERO, |t| {
        t < secs(2.0)
    });
    feed.extend(input(InputRole::Backup, backup_recipe(), secs(0.2), |_| {
        true
    }));
    feed.sort_by_key(|(t, _, _)| *t);
    let t0 = Instant::now();
    let mut switch = InputSwitch::new(InputSettings::default());
    let mut out = Vec::new();
    let mut removed = false;
    for (t, role, d) in feed {
        if t >= secs(2.0) && !removed {
            switch.remove_input(t0 + t, InputRole::Main);
            removed = true;
        }
        if role == InputRole::Main && removed {
            continue;
        }
        switch.push(t0 + t, role, d, &mut out);
    }
    let mut events = Vec::new();
    while let Some(e) = switch.poll_event() {
        events.push(e);
    }
    assert!(events.contains(&InputEvent::InputLost {
        role: InputRole::Main,
        reason: LossReason::Removed
    }));
    assert!(events.iter().any(|e| matches!(
        e,
        InputEvent::Switched {
            to: InputRole::Backup,
            reason: SwitchReason::MainRemoved,
            ..
        }
    )));
    assert_valid(&out);
}

fn ffmpeg_decodes(out: &[Bytes]) {
    if !std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("ffmpeg not on PATH: skipping the decode check");
        return;
    }
    let path = std::env::temp_dir().join(format!("switchyard-failover-{}.ts", std::process::id()));
    std::fs::write(&path, out.concat()).unwrap();
    let result = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        result.status.success() && result.stderr.is_empty(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}
