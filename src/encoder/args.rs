//! The ffmpeg command line of an encoder.
//!
//! Every flag that makes two encoders of one stream interchangeable is added
//! here, not left to the profile (DESIGN.md, "Facts measured on this
//! platform"):
//!
//! | flags | why |
//! |---|---|
//! | `-probesize 128k -analyzeduration 0` | default probing waits ~5 s on stdin; ≤ 32k silently drops audio; not `-fflags nobuffer`, which loses the first GOP |
//! | `-f mpegts -i pipe:0` | the stream arrives on stdin, starting at PAT+PMT+IDR |
//! | `-copyts`, `-mpegts_copyts 1` | the input timeline, unshifted (`-copyts` alone still shifts PTS by 1.4 s) |
//! | `-enc_time_base:v -1` | video PTS kept to the tick: by default the encoder's time base is 1/frame rate, so a source whose PTS are off that grid (any real camera) gets every frame renumbered, differently by each encoder depending on where it joined (measured: a replacement's frames 2.47 frames off the first encoder's) |
//! | `-force_key_frames source -forced-idr 1` | an IDR exactly where the source has one |
//! | `-sc_threshold 0`, x264 `keyint=infinite`, x265 `keyint=-1:scenecut=0:open-gop=0` | no keyframe of the encoder's own: a scene cut or a GOP length counted from the encoder's start differs between encoders |
//! | `-map 0:v:0 -map 0:a:0?`, `-streamid`, `-mpegts_start_pid`, `-mpegts_pmt_start_pid`, `-mpegts_service_id` | the same streams on the same PIDs: PAT/PMT byte-identical across processes |
//! | `-pes_payload_size 0` | one audio frame per PES, so audio can be cut on packet boundaries |
//! | `-progress pipe:2 -stats_period 0.5 -nostats` | progress blocks for [`crate::progress`] |
//! | `-f mpegts pipe:1` | TS on stdout |

use std::ffi::OsString;

use super::profile::Profile;

/// The PIDs and service id every encoder of a stream is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLayout {
    /// `program_number` in PAT/PMT (`-mpegts_service_id`).
    pub service_id: u16,
    /// `-mpegts_pmt_start_pid` (ffmpeg accepts 0x0020–0x1ffa).
    pub pmt_pid: u16,
    /// Video PID (`-streamid 0:…`, `-mpegts_start_pid`; 0x0020–0x0f00).
    pub video_pid: u16,
    /// Audio PID (`-streamid 1:…`).
    pub audio_pid: u16,
}

impl Default for StreamLayout {
    /// ffmpeg's own defaults (service 1, PMT 0x1000, video 0x100, audio
    /// 0x101), the layout of the captures in `testdata/`.
    fn default() -> StreamLayout {
        StreamLayout {
            service_id: 1,
            pmt_pid: 0x1000,
            video_pid: 0x100,
            audio_pid: 0x101,
        }
    }
}

/// The arguments to run `profile.ffmpeg()` with (program name not
/// included), or `None` for a passthrough profile, which runs no ffmpeg.
pub fn ffmpeg_args(profile: &Profile, layout: &StreamLayout) -> Option<Vec<OsString>> {
    if profile.is_passthrough() {
        return None;
    }
    let video = profile.video();
    let audio = profile.audio();
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    push(&["-hide_banner", "-nostdin"]);
    // Input: fast probing from stdin.
    push(&["-probesize", "128k", "-analyzeduration", "0"]);
    push(&["-f", "mpegts", "-i", "pipe:0", "-copyts"]);
    push(&["-map", "0:v:0", "-map", "0:a:0?"]);

    // Video.
    let (codec_params, video_extra) = split_codec_params(&video.extra, &video.codec);
    a.extend(["-c:v".into(), video.codec.clone()]);
    if video.codec != "copy" {
        if let Some(p) = &video.preset {
            a.extend(["-preset".into(), p.clone()]);
        }
        if let Some(t) = &video.tune {
            a.extend(["-tune".into(), t.clone()]);
        }
        if let Some(b) = video.bitrate_kbps {
            a.extend(["-b:v".into(), format!("{b}k")]);
        }
        if let Some(n) = video.threads {
            a.extend(["-threads".into(), n.to_string()]);
        }
        if let Some(size) = video.size {
            a.extend([
                "-vf".into(),
                format!("scale={}:{}", size.width, size.height),
            ]);
        }
        a.extend(["-enc_time_base:v".into(), "-1".into()]);
        a.extend(["-force_key_frames".into(), "source".into()]);
        a.extend(["-sc_threshold".into(), "0".into()]);
        let ours = match video.codec.as_str() {
            "libx264" => Some(("-x264-params", "keyint=infinite:scenecut=0:open-gop=0")),
            "libx265" => Some(("-x265-params", "keyint=-1:scenecut=0:open-gop=0")),
            _ => None,
        };
        if matches!(video.codec.as_str(), "libx264" | "libx265") {
            a.extend(["-forced-idr".into(), "1".into()]);
        }
        if let Some((option, ours)) = ours {
            // One params option, ours first: ffmpeg keeps only the last
            // `-x264-params` given, and the validated user keys cannot undo
            // ours.
            let merged = match codec_params {
                Some(theirs) => format!("{ours}:{theirs}"),
                None => ours.to_owned(),
            };
            a.extend([option.into(), merged]);
        }
    }
    a.extend(video_extra);

    // Audio.
    a.extend(["-c:a".into(), audio.codec.clone()]);
    if audio.codec != "copy"
        && let Some(b) = audio.bitrate_kbps
    {
        a.extend(["-b:a".into(), format!("{b}k")]);
    }
    a.extend(audio.extra.iter().cloned());

    // Output: the input timeline, pinned layout, progress, TS on stdout.
    let hex = |v: u16| format!("0x{v:04x}");
    a.extend(
        [
            "-f",
            "mpegts",
            "-mpegts_copyts",
            "1",
            "-pes_payload_size",
            "0",
            "-mpegts_service_id",
        ]
        .map(String::from),
    );
    a.push(layout.service_id.to_string());
    a.extend(["-mpegts_pmt_start_pid".into(), hex(layout.pmt_pid)]);
    a.extend(["-mpegts_start_pid".into(), hex(layout.video_pid)]);
    a.extend(["-streamid".into(), format!("0:{}", layout.video_pid)]);
    a.extend(["-streamid".into(), format!("1:{}", layout.audio_pid)]);
    a.extend(
        [
            "-progress",
            "pipe:2",
            "-stats_period",
            "0.5",
            "-nostats",
            "pipe:1",
        ]
        .map(String::from),
    );
    Some(a.into_iter().map(OsString::from).collect())
}

/// Takes the codec's own `-x264-params`/`-x265-params` out of `extra` so
/// that it can be merged with switchyard's.
fn split_codec_params(extra: &[String], codec: &str) -> (Option<String>, Vec<String>) {
    let option = match codec {
        "libx264" => "-x264-params",
        "libx265" => "-x265-params",
        _ => return (None, extra.to_vec()),
    };
    let mut params: Option<String> = None;
    let mut rest = Vec::new();
    let mut it = extra.iter();
    while let Some(arg) = it.next() {
        if arg == option
            && let Some(v) = it.next()
        {
            params = Some(match params {
                Some(p) => format!("{p}:{v}"),
                None => v.clone(),
            });
        } else {
            rest.push(arg.clone());
        }
    }
    (params, rest)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::encoder::profile::{AudioArgs, VideoArgs, VideoSize};

    fn profile(extra: &[&str]) -> Profile {
        Profile::new(
            "default",
            "/usr/bin/ffmpeg",
            VideoArgs {
                codec: "libx264".into(),
                bitrate_kbps: Some(2500),
                size: Some(VideoSize {
                    width: 854,
                    height: 480,
                }),
                preset: Some("veryfast".into()),
                tune: Some("zerolatency".into()),
                threads: Some(1),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            },
            AudioArgs {
                codec: "aac".into(),
                bitrate_kbps: Some(128),
                extra: Vec::new(),
            },
        )
        .expect("valid")
    }

    fn line(p: &Profile) -> String {
        let args = ffmpeg_args(p, &StreamLayout::default()).expect("not passthrough");
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn default_profile_command_line() {
        assert_eq!(
            line(&profile(&[])),
            "-hide_banner -nostdin -probesize 128k -analyzeduration 0 -f mpegts -i pipe:0 -copyts \
             -map 0:v:0 -map 0:a:0? -c:v libx264 -preset veryfast -tune zerolatency -b:v 2500k \
             -threads 1 -vf scale=854:480 -enc_time_base:v -1 -force_key_frames source -sc_threshold 0 \
             -forced-idr 1 \
             -x264-params keyint=infinite:scenecut=0:open-gop=0 -c:a aac -b:a 128k -f mpegts \
             -mpegts_copyts 1 -pes_payload_size 0 -mpegts_service_id 1 -mpegts_pmt_start_pid 0x1000 \
             -mpegts_start_pid 0x0100 -streamid 0:256 -streamid 1:257 -progress pipe:2 \
             -stats_period 0.5 -nostats pipe:1"
        );
    }

    #[test]
    fn user_codec_params_are_merged_after_ours() {
        let l = line(&profile(&["-x264-params", "ref=2", "-maxrate", "3M"]));
        assert!(
            l.contains("-x264-params keyint=infinite:scenecut=0:open-gop=0:ref=2 "),
            "{l}"
        );
        assert_eq!(l.matches("-x264-params").count(), 1);
        assert!(l.contains("-maxrate 3M -c:a"), "{l}");
    }

    #[test]
    fn no_fnobuffer_and_enough_probesize() {
        let l = line(&profile(&[]));
        assert!(!l.contains("nobuffer"));
        assert!(l.contains("-probesize 128k"));
    }

    #[test]
    fn passthrough_runs_no_ffmpeg() {
        assert_eq!(
            ffmpeg_args(&Profile::passthrough("pass"), &StreamLayout::default()),
            None
        );
    }

    #[test]
    fn copy_video_gets_no_keyframe_flags() {
        let p = Profile::new(
            "copy",
            "ffmpeg",
            VideoArgs {
                codec: "copy".into(),
                bitrate_kbps: None,
                size: None,
                preset: None,
                tune: None,
                threads: None,
                extra: Vec::new(),
            },
            AudioArgs {
                codec: "aac".into(),
                bitrate_kbps: None,
                extra: Vec::new(),
            },
        )
        .expect("valid");
        let l = line(&p);
        assert!(!l.contains("force_key_frames"));
        assert!(l.contains("-c:v copy -c:a aac -f mpegts -mpegts_copyts 1"));
    }
}
