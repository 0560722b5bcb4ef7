//! The fact the failover design rests on (DESIGN.md "The promise" 1): two
//! ffmpeg encoders run with `switchyard::encoder::ffmpeg_args` on the same
//! input produce interchangeable output — byte-identical PAT and PMT, the
//! same PIDs, and IDRs at exactly the input's IDR PTS — including an
//! encoder started mid-stream at a splice point (PAT+PMT+IDR), as after a
//! failover. Judged with `switchyard::probe::Prober`.
//!
//! Needs ffmpeg 5.1 on PATH (tools/test.sh installs it); skipped with a
//! message otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use switchyard::encoder::{AudioArgs, Profile, StreamLayout, VideoArgs, VideoSize, ffmpeg_args};
use switchyard::probe::{Prober, Report};
use switchyard::ts::pes::PesHeader;
use switchyard::ts::{PACKET_SIZE, TsPacket};

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn profile(name: &str, preset: &str, tune: Option<&str>, extra: &[&str]) -> Profile {
    Profile::new(
        name,
        "ffmpeg",
        VideoArgs {
            codec: "libx264".into(),
            bitrate_kbps: Some(300),
            size: Some(VideoSize {
                width: 128,
                height: 72,
            }),
            preset: Some(preset.into()),
            tune: tune.map(Into::into),
            threads: Some(1),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        },
        AudioArgs {
            codec: "aac".into(),
            bitrate_kbps: Some(48),
            extra: Vec::new(),
        },
    )
    .expect("valid profile")
}

/// Runs one encoder over `input` (written to a file first, fed on stdin).
fn encode(profile: &Profile, input: &[u8], tag: &str) -> std::process::Child {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("interchangeable-{}-{tag}.ts", std::process::id()));
    std::fs::write(&path, input).expect("write input");
    let args = ffmpeg_args(profile, &StreamLayout::default()).expect("not passthrough");
    Command::new("ffmpeg")
        .args(args)
        .stdin(std::fs::File::open(&path).expect("open input"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg")
}

fn finish(child: std::process::Child) -> Vec<u8> {
    let out = child.wait_with_output().expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn probe(bytes: &[u8]) -> Report {
    let mut p = Prober::new();
    p.push(bytes);
    p.finish().expect("a transport stream")
}

fn packets(bytes: &[u8]) -> impl Iterator<Item = &[u8; PACKET_SIZE]> {
    bytes
        .chunks_exact(PACKET_SIZE)
        .filter_map(|c| c.try_into().ok())
}

/// The first packet of `pid` that starts a section, with its continuity
/// counter zeroed (CCs restart in every process and are re-stamped anyway).
fn first_section_packet(bytes: &[u8], pid: u16) -> [u8; PACKET_SIZE] {
    let mut p = *packets(bytes)
        .find(|p| {
            TsPacket::from_array(p).is_ok_and(|t| t.pid().value() == pid && t.payload_unit_start())
        })
        .unwrap_or_else(|| panic!("no PSI on PID {pid:#x}"));
    p[3] &= 0xF0;
    p
}

/// The input from its `n`-th random access point (ffmpeg marks IDRs with
/// the adaptation field's random_access_indicator), PAT and PMT first: what
/// the ring buffer hands a replacement encoder.
fn from_splice_point(input: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&first_section_packet(input, 0));
    out.extend_from_slice(&first_section_packet(input, 0x1000));
    let start = packets(input)
        .position(|p| {
            TsPacket::from_array(p).is_ok_and(|t| {
                t.pid().value() == 0x100 && t.payload_unit_start() && t.random_access()
            })
        })
        .map(|first| {
            packets(input)
                .enumerate()
                .skip(first)
                .filter(|(_, p)| {
                    TsPacket::from_array(p).is_ok_and(|t| {
                        t.pid().value() == 0x100 && t.payload_unit_start() && t.random_access()
                    })
                })
                .nth(n)
                .map(|(i, _)| i)
                .expect("enough splice points")
        })
        .expect("a splice point");
    for p in packets(input).skip(start) {
        out.extend_from_slice(p);
    }
    out
}

/// PES PTS of every PES that starts in a packet of `pid` (one per frame:
/// `-pes_payload_size 0`), sorted.
fn pes_pts(bytes: &[u8], pid: u16) -> Vec<u64> {
    let mut out: Vec<u64> = packets(bytes)
        .filter_map(|p| TsPacket::from_array(p).ok())
        .filter(|t| t.pid().value() == pid && t.payload_unit_start())
        .filter_map(|t| PesHeader::parse(t.pid(), t.payload()).ok().flatten())
        .filter_map(|h| h.pts.map(|ts| ts.ticks()))
        .collect();
    out.sort_unstable();
    out
}

fn pids(r: &Report) -> Vec<u16> {
    r.pids.iter().map(|p| p.pid).collect()
}

fn check(profile: &Profile) {
    let input = std::fs::read(testdata("h264_aac_closed_gop.ts")).expect("capture");
    let late_input = from_splice_point(&input, 1);
    let input_report = probe(&input);
    let input_idrs = input_report.video.as_ref().expect("video").idr_pts.clone();
    assert_eq!(input_idrs.len(), 4);

    // Two at a time: the machine has two cores.
    let (a, b) = (encode(profile, &input, "a"), encode(profile, &input, "b"));
    let (a, b) = (finish(a), finish(b));
    let c = finish(encode(profile, &late_input, "c"));
    let (ra, rb, rc) = (probe(&a), probe(&b), probe(&c));
    let name = profile.name();

    for (tag, out, r) in [
        ("A", &a, &ra),
        ("B", &b, &rb),
        ("C (from the 2nd IDR)", &c, &rc),
    ] {
        assert_eq!(r.cc_errors, 0, "{name} {tag}");
        let v = r.video.as_ref().expect("video out");
        eprintln!(
            "{name} {tag}: {} bytes, PIDs {:x?}, {} video frames, IDR PTS {:?}, {} audio frames",
            out.len(),
            pids(r),
            v.frames,
            v.idr_pts,
            r.audio.first().map_or(0, |a| a.frames),
        );
        assert_eq!(v.pts_backwards, 0, "{name} {tag}");
        assert_eq!(v.duplicate_pts, 0, "{name} {tag}");
        assert_eq!(
            first_section_packet(out, 0),
            first_section_packet(&a, 0),
            "{name} {tag}: PAT"
        );
        assert_eq!(
            first_section_packet(out, 0x1000),
            first_section_packet(&a, 0x1000),
            "{name} {tag}: PMT"
        );
        assert_eq!(pids(r), pids(&ra), "{name} {tag}: PIDs");
    }
    // PAT, SDT (0x11), video, audio, PMT.
    assert_eq!(pids(&ra), vec![0, 0x11, 0x100, 0x101, 0x1000]);
    let idrs = |r: &Report| {
        r.video
            .as_ref()
            .map(|v| v.idr_pts.clone())
            .unwrap_or_default()
    };
    assert_eq!(idrs(&ra), input_idrs, "{name}: A's IDRs are the input's");
    assert_eq!(idrs(&rb), input_idrs, "{name}: B's IDRs are the input's");
    assert_eq!(
        idrs(&rc),
        input_idrs.get(1..).unwrap_or_default(),
        "{name}: C's IDRs are the input's from its start on"
    );
    let frames = |r: &Report| r.video.as_ref().map_or(0, |v| v.frames);
    assert_eq!(frames(&ra), 100);
    assert_eq!(frames(&rc), 75, "{name}: C encodes the last 3 GOPs");
    // The replacement's frames are the first encoder's frames: every video
    // and audio PTS of C is one of A's (audio included: the AAC encoder
    // frames from the first input sample, and the input's 1024-sample AAC
    // frames keep both on one grid; each output starts one frame, 1920
    // ticks, before its first input audio: AAC priming).
    for pid in [0x100, 0x101] {
        let (in_a, in_c) = (pes_pts(&a, pid), pes_pts(&c, pid));
        assert!(!in_c.is_empty());
        let missing: Vec<_> = in_c
            .iter()
            .filter(|p| in_a.binary_search(p).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: PID {pid:#x} PTS of C not in A: {missing:?}"
        );
    }
    eprintln!(
        "{name}: A and B byte-identical: {}; GOPs A {:?} C {:?}",
        a == b,
        ra.video.as_ref().map(|v| v.gop_frames.clone()),
        rc.video.as_ref().map(|v| v.gop_frames.clone()),
    );
}

#[test]
fn zerolatency_encoders_are_interchangeable() {
    if !ffmpeg_available() {
        eprintln!("SKIPPED: ffmpeg is not on PATH (tools/test.sh installs it)");
        return;
    }
    check(&profile(
        "ultrafast-zerolatency",
        "ultrafast",
        Some("zerolatency"),
        &[],
    ));
}

#[test]
fn b_frame_encoders_are_interchangeable() {
    if !ffmpeg_available() {
        eprintln!("SKIPPED: ffmpeg is not on PATH (tools/test.sh installs it)");
        return;
    }
    check(&profile(
        "veryfast-bframes",
        "veryfast",
        None,
        &["-bf", "2"],
    ));
}

/// x264's default `keyint` (250) adds an IDR of its own 250 frames after
/// the encoder's start, which an encoder started elsewhere does not have:
/// measured on ffmpeg 5.1 with a 300-frame source GOP, without
/// `keyint=infinite` the output GOPs were 250/50/50 for the source's
/// 300/50. With the generated arguments they are the source's.
#[test]
fn long_source_gop_gets_no_keyframe_of_the_encoders_own() {
    if !ffmpeg_available() {
        eprintln!("SKIPPED: ffmpeg is not on PATH (tools/test.sh installs it)");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("long-gop-{}.ts", std::process::id()));
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25",
            "-t",
            "14",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "300",
            "-keyint_min",
            "300",
            "-sc_threshold",
            "0",
            "-threads",
            "1",
            "-f",
            "mpegts",
            "-y",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(made.success());
    let input = std::fs::read(&path).expect("long-GOP input");
    let source = probe(&input);
    let source_idrs = source.video.as_ref().expect("video").idr_pts.clone();
    assert_eq!(source_idrs.len(), 2, "GOPs of 300 and 50 frames");
    let p = profile(
        "ultrafast-zerolatency",
        "ultrafast",
        Some("zerolatency"),
        &[],
    );
    let out = probe(&finish(encode(&p, &input, "long-gop")));
    let v = out.video.as_ref().expect("video out");
    assert_eq!(v.idr_pts, source_idrs);
    assert_eq!(v.gop_frames, vec![300, 50]);
}
