//! Splicer tests over the committed captures, with a simulated clock.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::testing::*;
use super::*;
use crate::probe::Report;
use crate::ring::testing::{self, pid, probe, pusi};
use crate::ts::{Timestamp, TsPacket};

/// What a run produced.
struct Run {
    out: Vec<Bytes>,
    events: Vec<SpliceEvent>,
    /// `out.len()` at each switch event.
    marks: Vec<usize>,
    splicer: Splicer,
}

/// Feeds the packets in time order; `switches` are (time, target).
fn run(
    settings: SpliceSettings,
    mut feed: Vec<(Duration, SourceId, Bytes)>,
    switches: &[(Duration, SourceId)],
    removals: &[(Duration, SourceId)],
) -> Run {
    feed.sort_by_key(|(t, _, _)| *t);
    let t0 = Instant::now();
    let mut splicer = Splicer::new(settings);
    let mut out = Vec::new();
    let mut events = Vec::new();
    let mut marks = Vec::new();
    let mut switches = switches.iter().peekable();
    let mut removals = removals.iter().peekable();
    for (t, id, p) in feed {
        while let Some((at, target)) = switches.next_if(|(at, _)| *at <= t) {
            splicer.switch_to(t0 + *at, *target);
        }
        while let Some((_, gone)) = removals.next_if(|(at, _)| *at <= t) {
            splicer.remove_source(*gone);
        }
        let before = out.len();
        splicer.push(t0 + t, id, p, &mut out);
        while let Some(e) = splicer.poll_event() {
            marks.push(before);
            events.push(e);
        }
    }
    Run {
        out,
        events,
        marks,
        splicer,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The output invariants every test expects.
fn assert_valid(run: &Run) -> Report {
    let report = probe(&run.out);
    assert_eq!(report.cc_errors, 0, "{report}");
    assert_eq!(report.psi_changes, 0, "{report}");
    assert_eq!(report.errors.psi_errors, 0, "{report}");
    assert_eq!(report.errors.pes_errors, 0, "{report}");
    assert_eq!(report.errors.malformed_packets, 0, "{report}");
    let video = report.video.as_ref().expect("video");
    assert_eq!(video.frames_before_first_idr, 0, "{report}");
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
        if audio.codec == "aac" {
            assert_audio_does_not_overlap(&run.out, audio.pid);
        }
    }
    assert_eq!(report.programs.len(), 1);
    // Every PAT/PMT packet carries the same bytes (counter aside).
    for psi_pid in [0, report.programs[0].pmt_pid] {
        let mut first: Option<Vec<u8>> = None;
        for p in run.out.iter().filter(|p| pid(p) == psi_pid) {
            let body: Vec<u8> = p
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 3 { b & 0xF0 } else { *b })
                .collect();
            assert_eq!(
                first.get_or_insert_with(|| body.clone()),
                &body,
                "PSI changed"
            );
        }
    }
    // After every switch, the first video PES is an IDR.
    let video_pid = video.pid;
    for &mark in &run.marks {
        let rest = &run.out[mark..];
        let idr = probe(rest);
        let v = idr.video.as_ref().expect("video after the switch");
        assert_eq!(v.frames_before_first_idr, 0, "switch not on an IDR");
        assert!(rest.iter().any(|p| pid(p) == video_pid && pusi(p)));
    }
    report
}

fn switched(e: &SpliceEvent) -> (Option<SourceId>, SourceId, bool, i64) {
    let SpliceEvent::Switched {
        from,
        to,
        rebased,
        offset,
        ..
    } = e;
    (*from, *to, *rebased, *offset)
}

#[test]
fn splices_unrelated_clocks_back_and_forth() {
    let ra = Recipe::new(4);
    let rb = Recipe {
        loops: 6,
        shift: 5_000_000_000,
        loop_ticks: 78 * 3600,
        pid_shift: 0,
    };
    let mut feed = timed(source(CLOSED_GOP, ra), A, Duration::ZERO, ra);
    feed.extend(timed(source(CBR, rb), B, secs(0.3), rb));
    let switches: Vec<(Duration, SourceId)> = (0..12)
        .map(|i| {
            (
                secs(0.1 + 1.3 * f64::from(i)),
                if i % 2 == 0 { A } else { B },
            )
        })
        .collect();
    let run = run(SpliceSettings::default(), feed, &switches, &[]);
    let report = assert_valid(&run);
    assert!(run.events.len() >= 10, "{:?}", run.events);
    for (i, e) in run.events.iter().enumerate() {
        let (from, to, rebased, _) = switched(e);
        assert_eq!(to, if i % 2 == 0 { A } else { B });
        assert_eq!(from.is_some(), i > 0);
        // B's clock is unrelated to the output's (A's, or A's rebased):
        // always rebased. Back on A, its own clock may fit again.
        if to == B {
            assert!(rebased, "unrelated clocks are rebased: {e:?}");
        }
    }
    let stats = run.splicer.stats();
    assert_eq!(stats.pcr_discontinuities, 0, "{stats:?}");
    for e in &run.events[1..] {
        let SpliceEvent::Switched { pts_gap, .. } = e;
        assert!((3600..90_000).contains(pts_gap), "{e:?}");
    }
    // Counters of the two sources never line up again after a switch:
    // re-stamped copies (zero copy is for the single-source case).
    assert!(stats.rewritten > 3000, "{stats:?}");
    // No null packets or foreign PIDs in the output.
    assert_eq!(report.pids.len(), 4, "{report}");
    let mut last: Option<(usize, crate::ts::Pcr)> = None;
    for (i, p) in run.out.iter().enumerate() {
        if let Some(pcr) = TsPacket::new(p).unwrap().pcr() {
            if let Some((j, l)) = last {
                let step = pcr.delta(l);
                assert!(
                    (0..27_000_000).contains(&step),
                    "PCR step {step} at {j}..{i}, marks {:?} {:#?}",
                    run.marks,
                    run.events
                );
            }
            last = Some((i, pcr));
        }
    }
    assert_eq!(report.pcr.as_ref().unwrap().discontinuities, 0);
    ffmpeg_decodes(&run.out, "unrelated");
}

#[test]
fn single_source_passes_through_untouched() {
    let r = Recipe::new(1);
    let packets = source(CLOSED_GOP, r);
    let feed = timed(packets.clone(), A, Duration::ZERO, r);
    let run = run(SpliceSettings::default(), feed, &[(Duration::ZERO, A)], &[]);
    assert_valid(&run);
    // From the first IDR on, every packet but PSI is the very same bytes.
    let stats = run.splicer.stats();
    assert_eq!(stats.rewritten, 0, "{stats:?}");
    let first_idr = run.out.iter().position(|p| pid(p) == 0x100).unwrap();
    let start = packets
        .iter()
        .position(|p| p == &run.out[first_idr])
        .unwrap();
    // PAT and PMT are the splicer's own; DVB SI (the SDT on 0x11) is no
    // part of the program and not forwarded.
    let expected: Vec<&Bytes> = packets[start..]
        .iter()
        .filter(|p| ![0, 0x11, 0x1000].contains(&pid(p)))
        .collect();
    let got: Vec<&Bytes> = run.out[first_idr..]
        .iter()
        .filter(|p| pid(p) != 0 && pid(p) != 0x1000)
        .collect();
    assert_eq!(expected.len(), got.len());
    assert!(
        expected
            .iter()
            .zip(&got)
            .all(|(a, b)| a.as_ptr() == b.as_ptr()),
        "not zero-copy"
    );
}

#[test]
fn remaps_a_source_with_other_pids() {
    let ra = Recipe::new(2);
    let rb = Recipe {
        pid_shift: 0x100,
        shift: 1 << 32,
        ..Recipe::new(2)
    };
    let mut feed = timed(source(CLOSED_GOP, ra), A, Duration::ZERO, ra);
    feed.extend(timed(source(CLOSED_GOP, rb), B, secs(0.5), rb));
    let run = run(
        SpliceSettings::default(),
        feed,
        &[(Duration::ZERO, A), (secs(1.5), B), (secs(4.5), A)],
        &[],
    );
    let report = assert_valid(&run);
    assert_eq!(run.events.len(), 3);
    let pids: Vec<u16> = report.pids.iter().map(|p| p.pid).collect();
    assert_eq!(pids, vec![0, 0x100, 0x101, 0x1000], "{report}");
    assert_eq!(run.splicer.stats().extra_streams_dropped, 1);
    let audio = &report.audio[0];
    assert!(audio.frames > 150, "{report}");
}

#[test]
fn related_clocks_are_kept() {
    // Two encoders of one input: the same timeline; B's packets arrive
    // three frames (120 ms) before A's.
    let r = Recipe::new(2);
    let mut feed = timed(source(CLOSED_GOP, r), A, secs(0.12), r);
    feed.extend(timed(source(CLOSED_GOP, r), B, Duration::ZERO, r));
    let run = run(
        SpliceSettings::default(),
        feed,
        &[(Duration::ZERO, A), (secs(1.5), B), (secs(4.6), A)],
        &[],
    );
    let report = assert_valid(&run);
    assert_eq!(run.events.len(), 3);
    let (_, to, rebased, offset) = switched(&run.events[1]);
    assert_eq!((to, rebased, offset), (B, false, 0), "{:?}", run.events);
    // Switching back to the source that is behind: rebased forward.
    let (_, to, rebased, offset) = switched(&run.events[2]);
    assert_eq!(to, A);
    assert!(rebased && offset > 0);
    // Frames are neither repeated nor lost beyond the one in progress.
    let video = report.video.unwrap();
    assert!(video.frames >= 190, "{}", video.frames);
    ffmpeg_decodes(&run.out, "related");
}

#[test]
fn audio_is_cut_by_pts() {
    // B lags A by 0.3 s of the same timeline: switching to it moves its
    // clock forward, and its audio before the IDR is older than what A
    // sent: dropped whole.
    let r = Recipe::new(2);
    let mut feed = timed(source(CLOSED_GOP, r), A, Duration::ZERO, r);
    feed.extend(timed(
        source(CLOSED_GOP, Recipe { shift: 0, ..r }),
        B,
        secs(0.3),
        r,
    ));
    let settings = SpliceSettings {
        related_clock_tolerance: Duration::ZERO,
        ..SpliceSettings::default()
    };
    let run = run(settings, feed, &[(Duration::ZERO, A), (secs(1.5), B)], &[]);
    let report = assert_valid(&run);
    testing::assert_whole_audio_frames(&run.out);
    assert!(report.audio[0].frames > 150);
}

#[test]
fn waits_for_an_idr() {
    // B is open GOP: only its first picture is an IDR, so a switch asked
    // after it never happens and A carries on.
    let open_gop: &[u8] = include_bytes!("../../testdata/h264_open_gop.ts");
    let ra = Recipe::new(2);
    let rb = Recipe {
        loops: 1,
        loop_ticks: 97 * 3750,
        ..Recipe::new(1)
    };
    let mut feed = timed(source(CLOSED_GOP, ra), A, Duration::ZERO, ra);
    feed.extend(timed(source(open_gop, rb), B, Duration::ZERO, rb));
    let run = run(
        SpliceSettings::default(),
        feed,
        &[(Duration::ZERO, A), (secs(1.0), B)],
        &[],
    );
    assert_valid(&run);
    assert_eq!(run.events.len(), 1);
    assert_eq!(run.splicer.active(), Some(A));
    assert_eq!(run.splicer.pending(), Some(B));
    // Every frame of A but the last, which the gate holds until A's next
    // frame starts.
    let video = probe(&run.out).video.unwrap();
    assert_eq!(video.frames, 2 * 100 - 1);
}

#[test]
fn removing_the_pending_source_cancels_the_switch() {
    let r = Recipe::new(2);
    let mut feed = timed(source(CLOSED_GOP, r), A, Duration::ZERO, r);
    feed.extend(timed(
        source(CBR, Recipe::new(1)),
        B,
        Duration::ZERO,
        Recipe::new(1),
    ));
    let run = run(
        SpliceSettings::default(),
        feed,
        &[(Duration::ZERO, A), (secs(1.1), B)],
        &[(secs(1.2), B)],
    );
    assert_valid(&run);
    assert_eq!(run.events.len(), 1);
    assert_eq!(
        (run.splicer.active(), run.splicer.pending()),
        (Some(A), None)
    );
}

#[test]
fn the_first_source_starts_at_its_first_idr() {
    let r = Recipe::new(1);
    let packets = source(CLOSED_GOP, r);
    let mut splicer = Splicer::new(SpliceSettings::default());
    let now = Instant::now();
    splicer.switch_to(now, A);
    let mut out = Vec::new();
    // Start mid-GOP: nothing goes out before the second IDR.
    for p in &packets[100..] {
        splicer.push(now, A, p.clone(), &mut out);
    }
    let report = probe(&out);
    let video = report.video.unwrap();
    assert_eq!(video.idr_pts.first(), Some(&223_200));
    assert_eq!(video.frames_before_first_idr, 0);
    assert_eq!(pid(&out[0]), 0);
}

#[test]
fn malformed_and_duplicate_packets_are_dropped() {
    let r = Recipe::new(1);
    let packets = source(CLOSED_GOP, r);
    let mut splicer = Splicer::new(SpliceSettings::default());
    let now = Instant::now();
    splicer.switch_to(now, A);
    let mut out = Vec::new();
    for p in &packets {
        splicer.push(now, A, p.clone(), &mut out);
        if pid(p) == 0x100 {
            splicer.push(now, A, p.clone(), &mut out);
        }
        splicer.push(now, A, p.slice(..100), &mut out);
    }
    let stats = splicer.stats();
    assert!(stats.duplicates_dropped > 300);
    assert_eq!(stats.malformed, packets.len() as u64);
    assert_eq!(probe(&out).cc_errors, 0);
}

/// Decodes the output with ffmpeg, when it is installed.
fn ffmpeg_decodes(out: &[Bytes], name: &str) {
    let available = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("ffmpeg not on PATH: skipping the decode check of {name}");
        return;
    }
    let path = std::env::temp_dir().join(format!(
        "switchyard-splice-{name}-{}.ts",
        std::process::id()
    ));
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn any_switch_times_give_valid_output(times in proptest::collection::vec(0.0f64..7.5, 1..8), lag in 0.0f64..2.0) {
        let ra = Recipe::new(2);
        let rb = Recipe { shift: 123_456_789, ..Recipe::new(2) };
        let mut feed = timed(source(CLOSED_GOP, ra), A, Duration::ZERO, ra);
        feed.extend(timed(source(CLOSED_GOP, rb), B, secs(lag), rb));
        let mut times = times;
        times.sort_by(f64::total_cmp);
        let mut switches = vec![(Duration::ZERO, A)];
        switches.extend(times.iter().enumerate().map(|(i, t)| (secs(*t), if i % 2 == 0 { B } else { A })));
        let run = run(SpliceSettings::default(), feed, &switches, &[]);
        assert_valid(&run);
        let _ = Timestamp::HZ;
    }
}

#[test]
fn shared_timeline_never_repeats_or_rebases() {
    // Two encoders of one stream on one timeline (`-copyts`): B runs three
    // frames ahead of A. Switching A→B takes B's next IDR, with no frame
    // twice and nothing rebased. While B lives, a switch back to A (behind)
    // never finds an IDR that B has not sent already, so B stays on; once
    // B dies at 4.6 s, A's next IDR after B's last frame takes over.
    let r = Recipe::new(2);
    let mut feed = timed(source(CLOSED_GOP, r), A, secs(0.12), r);
    feed.extend(
        timed(source(CLOSED_GOP, r), B, Duration::ZERO, r)
            .into_iter()
            .filter(|(t, _, _)| *t < secs(4.6)),
    );
    let settings = SpliceSettings {
        timeline: Timeline::Shared,
        ..SpliceSettings::default()
    };
    let run = run(
        settings,
        feed,
        &[(Duration::ZERO, A), (secs(1.5), B), (secs(3.0), A)],
        &[],
    );
    let report = assert_valid(&run);
    assert_eq!(run.events.len(), 3, "{:?}", run.events);
    for e in &run.events {
        let (_, _, rebased, offset) = switched(e);
        assert!(!rebased && offset == 0, "{e:?}");
    }
    let (_, to, _, _) = switched(&run.events[2]);
    assert_eq!(to, A);
    let video = report.video.unwrap();
    assert_eq!(video.duplicate_pts, 0);
    // 2 loops of 100 frames; what is lost is B's frame in progress at its
    // death and A's frames up to its next IDR: less than a GOP.
    assert!(video.frames > 200 - 25 && video.frames < 200, "{video:?}");
    ffmpeg_decodes(&run.out, "shared");
}

/// Hitless failover (issue 4 point 5) at the core: encoder A's output goes
/// through a one-GOP gate into a shared-timeline splicer; A dies at a
/// random packet; the replacement B encodes again from the ring's splice
/// point at or before the first frame not yet output (the start of the
/// GOP the gate was holding) and goes through its own gate. The output
/// has every frame exactly once, for every kill point tried.
#[test]
fn hitless_failover_loses_and_repeats_no_frame() {
    let r = Recipe::new(3);
    let encoder_output = source(CLOSED_GOP, r);
    let total = probe(&encoder_output).video.unwrap().frames;
    let settings = SpliceSettings {
        timeline: Timeline::Shared,
        ..SpliceSettings::default()
    };
    // Where each GOP starts in the encoder's output (what a replacement
    // fed from that ring splice point produces from): the PAT just before
    // each IDR, so the replacement starts with PSI as ffmpeg does.
    let mut gop_starts = Vec::new();
    let mut last_pat = 0;
    let mut demux = crate::ts::demux::Demux::new();
    let mut indexer =
        crate::ts::gop::GopIndexer::new(crate::ts::gop::ProgramSelector::FirstWithVideo);
    let mut pats = Vec::new();
    for (i, p) in encoder_output.iter().enumerate() {
        if pid(p) == 0 {
            last_pat = i;
        }
        pats.push(last_pat);
        demux.push_packet(p[..].try_into().unwrap(), &mut indexer);
        while let Some(point) = indexer.poll() {
            gop_starts.push(pats[point.index as usize]);
        }
    }
    assert!(gop_starts.len() >= 10, "{gop_starts:?}");
    let t0 = Instant::now();
    for (n, kill_at) in [300usize, 777, 1234, 1500, 1901].into_iter().enumerate() {
        let mut splicer = Splicer::new(settings);
        splicer.switch_to(t0, A);
        let mut out = Vec::new();
        let mut gate = GopGate::new(4 << 20);
        let mut released = Vec::new();
        for p in &encoder_output[..kill_at] {
            gate.push(p.clone(), &mut released);
            for q in released.drain(..) {
                splicer.push(t0, A, q, &mut out);
            }
        }
        // A dies: its incomplete GOP is dropped; B restarts at the ring's
        // splice point for the first frame A's gate did not release.
        gate.discard();
        splicer.switch_to(t0, B);
        let restart = *gop_starts
            .iter()
            .rev()
            .find(|&&s| s < kill_at)
            .expect("a GOP before the kill");
        let mut gate_b = GopGate::new(4 << 20);
        for p in &encoder_output[restart..] {
            gate_b.push(p.clone(), &mut released);
            for q in released.drain(..) {
                splicer.push(t0, B, q, &mut out);
            }
        }
        gate_b.flush(&mut released);
        for q in released.drain(..) {
            splicer.push(t0, B, q, &mut out);
        }
        let report = probe(&out);
        assert_eq!(report.cc_errors, 0, "kill {n} at {kill_at}: {report}");
        let video = report.video.clone().unwrap();
        assert_eq!(
            (video.frames, video.duplicate_pts, video.pts_backwards),
            (total, 0, 0),
            "kill {n} at packet {kill_at}: {report}"
        );
    }
}

/// Low-latency failover at the core: no gate, so A's frames go out at
/// once; after A dies mid-GOP, B (restarted from the same ring splice
/// point) is taken at its first IDR after the last frame sent. Frames are
/// lost (the rest of A's GOP), never repeated: fewer than one GOP.
#[test]
fn low_latency_failover_loses_less_than_a_gop_and_repeats_nothing() {
    let r = Recipe::new(3);
    let encoder_output = source(CLOSED_GOP, r);
    let total = probe(&encoder_output).video.unwrap().frames;
    let settings = SpliceSettings {
        timeline: Timeline::Shared,
        ..SpliceSettings::default()
    };
    let t0 = Instant::now();
    for kill_at in [300usize, 777, 1234, 1901] {
        let mut splicer = Splicer::new(settings);
        splicer.switch_to(t0, A);
        let mut out = Vec::new();
        for p in &encoder_output[..kill_at] {
            splicer.push(t0, A, p.clone(), &mut out);
        }
        splicer.switch_to(t0, B);
        // B starts well before the kill (the ring's splice point).
        for p in &encoder_output[kill_at.saturating_sub(200)..] {
            splicer.push(t0, B, p.clone(), &mut out);
        }
        let report = probe(&out);
        assert_eq!(report.cc_errors, 0, "kill at {kill_at}: {report}");
        let video = report.video.clone().unwrap();
        assert_eq!(
            (video.duplicate_pts, video.pts_backwards),
            (0, 0),
            "{report}"
        );
        assert!(
            video.frames < total && video.frames > total - 25,
            "kill at {kill_at}: {} of {total} frames",
            video.frames
        );
    }
}

#[test]
fn a_gap_after_a_dead_source_is_a_whole_number_of_frames() {
    // A dies at 2 s; the switch to B (unrelated clock) comes 0.5 s later
    // and waits for B's IDR. The wall-clock gap goes into the timeline,
    // rounded up to whole frames: a frame-rate guess over the output (as
    // ffmpeg makes) still finds the source's 25 fps.
    let ra = Recipe::new(1);
    let rb = Recipe {
        shift: 987_654_321,
        ..Recipe::new(2)
    };
    // A ends between two frames (a switch without frame hold would
    // otherwise send its half frame).
    let mut feed = timed(source(CLOSED_GOP, ra), A, Duration::ZERO, ra);
    let end = feed
        .iter()
        .position(|(t, _, p)| *t >= secs(2.0) && pid(p) == testing::VIDEO && pusi(p))
        .unwrap();
    feed.truncate(end);
    feed.extend(timed(source(CLOSED_GOP, rb), B, secs(0.37), rb));
    let run = run(
        SpliceSettings::default(),
        feed,
        &[(Duration::ZERO, A), (secs(2.5), B)],
        &[],
    );
    assert_valid(&run);
    let [_, SpliceEvent::Switched { pts_gap, gap, .. }] = run.events.as_slice() else {
        panic!("two switches: {:?}", run.events);
    };
    assert!(*gap >= secs(0.5), "{gap:?}");
    assert!(
        *pts_gap >= super::splicer::to_ticks(*gap),
        "{pts_gap} for {gap:?}"
    );
    assert_eq!(pts_gap % 3600, 0, "{pts_gap} for {gap:?}");
    ffmpeg_decodes(&run.out, "dead-source-gap");
}
