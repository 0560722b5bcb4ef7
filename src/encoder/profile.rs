//! Encoder profiles: what a user may choose, validated.

use std::fmt;
use std::path::PathBuf;

/// Output picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSize {
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for VideoSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Video encoding choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoArgs {
    /// ffmpeg encoder name: `libx264`, `libx265`, `copy`, …
    pub codec: String,
    /// Target bitrate, kbit/s (`-b:v`).
    pub bitrate_kbps: Option<u32>,
    /// Scale to this size (`-vf scale=W:H`).
    pub size: Option<VideoSize>,
    /// `-preset` (x264/x265: `ultrafast` … `veryslow`).
    pub preset: Option<String>,
    /// `-tune` (`zerolatency`).
    pub tune: Option<String>,
    /// Encoder threads (`-threads`); DESIGN.md's capacity figures are for 1.
    pub threads: Option<u32>,
    /// Further output arguments, validated (see [`Profile::new`]).
    pub extra: Vec<String>,
}

/// Audio encoding choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioArgs {
    /// ffmpeg encoder name: `aac`, `copy`, …
    pub codec: String,
    /// `-b:a`, kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// Further output arguments, validated like the video ones.
    pub extra: Vec<String>,
}

/// A named encoder profile. Construct with [`Profile::new`] (validated) or
/// [`Profile::passthrough`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    name: String,
    ffmpeg: PathBuf,
    video: VideoArgs,
    audio: AudioArgs,
    passthrough: bool,
}

impl Profile {
    /// A profile that runs `ffmpeg`, or an error naming the profile and
    /// the argument that would make two encoders of a stream produce GOPs
    /// that cannot be spliced.
    pub fn new(
        name: impl Into<String>,
        ffmpeg: impl Into<PathBuf>,
        video: VideoArgs,
        audio: AudioArgs,
    ) -> Result<Profile, ProfileError> {
        let name = name.into();
        if video.codec.trim().is_empty() || audio.codec.trim().is_empty() {
            return Err(ProfileError::NoCodec { profile: name });
        }
        if let Some(size) = video.size
            && (size.width == 0 || size.height == 0 || size.width % 2 == 1 || size.height % 2 == 1)
        {
            return Err(ProfileError::BadSize {
                profile: name,
                size,
            });
        }
        check_extra(&name, "video.extra", &video.extra, video.size.is_some())?;
        check_extra(&name, "audio.extra", &audio.extra, false)?;
        Ok(Profile {
            name,
            ffmpeg: ffmpeg.into(),
            video,
            audio,
            passthrough: false,
        })
    }

    /// A profile that forwards the input unchanged (no ffmpeg).
    pub fn passthrough(name: impl Into<String>) -> Profile {
        Profile {
            name: name.into(),
            ffmpeg: PathBuf::new(),
            video: VideoArgs {
                codec: "copy".into(),
                bitrate_kbps: None,
                size: None,
                preset: None,
                tune: None,
                threads: None,
                extra: Vec::new(),
            },
            audio: AudioArgs {
                codec: "copy".into(),
                bitrate_kbps: None,
                extra: Vec::new(),
            },
            passthrough: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ffmpeg(&self) -> &std::path::Path {
        &self.ffmpeg
    }

    pub fn video(&self) -> &VideoArgs {
        &self.video
    }

    pub fn audio(&self) -> &AudioArgs {
        &self.audio
    }

    pub fn is_passthrough(&self) -> bool {
        self.passthrough
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "profile `{profile}`: `{argument}` in {field} would break encoder interchangeability: {why}; remove it (switchyard adds what failover needs by itself)"
    )]
    BreaksInterchangeability {
        profile: String,
        field: &'static str,
        argument: String,
        why: &'static str,
    },
    #[error("profile `{profile}`: `{argument}` in {field} is an option without its value")]
    MissingValue {
        profile: String,
        field: &'static str,
        argument: String,
    },
    #[error("profile `{profile}`: video and audio codec must be named (e.g. `libx264`, `aac`)")]
    NoCodec { profile: String },
    #[error("profile `{profile}`: size {size} must have even, non-zero width and height")]
    BadSize { profile: String, size: VideoSize },
}

/// ffmpeg is not where a profile says: the start-up error the shell shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "profile `{profile}` needs ffmpeg, but `{path}` was not found or is not executable: install ffmpeg (Debian/Ubuntu: `sudo apt install ffmpeg`; macOS: `brew install ffmpeg`) or set `ffmpeg = \"/path/to/ffmpeg\"` in the profile"
)]
pub struct FfmpegMissing {
    pub profile: String,
    pub path: String,
}

/// Options switchyard owns, and why a profile may not set them. Names are
/// without the leading `-` and without stream specifiers (`-g:v` is `g`).
const OWNED: &[(&str, &str)] = &[
    (
        "g",
        "switchyard places keyframes where the source has them (-force_key_frames source), and an encoder's own GOP length counts from its own start",
    ),
    (
        "keyint_min",
        "switchyard places keyframes where the source has them",
    ),
    (
        "force_key_frames",
        "switchyard sets -force_key_frames source; `expr:` forcing counts from each encoder's own start and does not align",
    ),
    ("forced-idr", "switchyard forces IDRs itself"),
    ("copyts", "switchyard sets -copyts itself"),
    (
        "nocopyts",
        "every encoder must keep the input timeline (-copyts)",
    ),
    (
        "start_at_zero",
        "every encoder must keep the input timeline (-copyts)",
    ),
    ("copytb", "every encoder must keep the input timeline"),
    (
        "enc_time_base",
        "switchyard sets -enc_time_base:v -1 so that video PTS are kept to the tick, not rounded to the frame rate",
    ),
    ("itsoffset", "every encoder must keep the input timeline"),
    (
        "output_ts_offset",
        "every encoder must keep the input timeline",
    ),
    ("ss", "every encoder must keep the input timeline"),
    ("t", "encoders run until their input ends"),
    ("to", "encoders run until their input ends"),
    (
        "r",
        "a frame rate change makes frame timing depend on each encoder's start",
    ),
    (
        "vsync",
        "frame duplication and dropping depend on each encoder's start",
    ),
    (
        "fps_mode",
        "frame duplication and dropping depend on each encoder's start",
    ),
    (
        "async",
        "audio resampling to the clock depends on each encoder's start",
    ),
    (
        "muxdelay",
        "the muxer delay shifts PTS (-mpegts_copyts 1 keeps them)",
    ),
    (
        "muxpreload",
        "the muxer preload shifts PTS (-mpegts_copyts 1 keeps them)",
    ),
    ("avoid_negative_ts", "the muxer must not shift timestamps"),
    (
        "f",
        "the output must be MPEG-TS on stdout (-f mpegts pipe:1)",
    ),
    ("i", "the input is the stream on stdin"),
    (
        "map",
        "switchyard pins -map 0:v:0 -map 0:a:0? so every encoder has the same streams",
    ),
    ("streamid", "switchyard pins the PIDs"),
    ("program", "switchyard pins the program layout"),
    (
        "filter_complex",
        "a filter graph may change the stream layout",
    ),
    ("lavfi", "a filter graph may change the stream layout"),
    (
        "pes_payload_size",
        "switchyard sets -pes_payload_size 0 so audio can be cut on packet boundaries",
    ),
    ("progress", "switchyard reads -progress on stderr"),
    ("stats_period", "switchyard sets the -progress period"),
    ("stats", "switchyard reads -progress, not the stats line"),
    ("intra-refresh", "intra refresh has no IDR to splice at"),
];

/// Options with a prefix switchyard owns (`-mpegts_service_id`, …).
const OWNED_PREFIX: &[(&str, &str)] = &[(
    "mpegts_",
    "switchyard pins the MPEG-TS muxer settings (PIDs, service id, copyts)",
)];

/// Keys of `-x264-params`, `-x265-params` and `-x264opts` that break
/// interchangeability, with the only value allowed (if any).
const CODEC_PARAMS: &[(&str, Option<&str>, &str)] = &[
    (
        "keyint",
        None,
        "switchyard places keyframes where the source has them",
    ),
    (
        "min-keyint",
        None,
        "switchyard places keyframes where the source has them",
    ),
    (
        "keyint-min",
        None,
        "switchyard places keyframes where the source has them",
    ),
    (
        "scenecut",
        Some("0"),
        "scene-cut keyframes differ between encoders started at different points",
    ),
    ("open-gop", Some("0"), "an open GOP has no IDR to splice at"),
    (
        "intra-refresh",
        Some("0"),
        "intra refresh has no IDR to splice at",
    ),
];

fn check_extra(
    profile: &str,
    field: &'static str,
    extra: &[String],
    has_size: bool,
) -> Result<(), ProfileError> {
    let breaks = |argument: String, why: &'static str| ProfileError::BreaksInterchangeability {
        profile: profile.to_owned(),
        field,
        argument,
        why,
    };
    let mut i = 0;
    while let Some(arg) = extra.get(i) {
        i += 1;
        let Some(option) = arg.strip_prefix('-') else {
            continue;
        };
        let base = option.split(':').next().unwrap_or(option);
        let value = extra.get(i).cloned();
        let shown = match &value {
            Some(v) => format!("{arg} {v}"),
            None => arg.clone(),
        };
        if let Some((_, why)) = OWNED.iter().find(|(name, _)| *name == base) {
            return Err(breaks(shown, why));
        }
        if let Some((_, why)) = OWNED_PREFIX.iter().find(|(p, _)| base.starts_with(p)) {
            return Err(breaks(shown, why));
        }
        match base {
            "sc_threshold" => {
                if value.as_deref() != Some("0") {
                    return Err(breaks(
                        shown,
                        "scene-cut keyframes differ between encoders started at different points",
                    ));
                }
                i += 1;
            }
            "x264-params" | "x265-params" | "x264opts" => {
                let Some(v) = value else {
                    return Err(ProfileError::MissingValue {
                        profile: profile.to_owned(),
                        field,
                        argument: arg.clone(),
                    });
                };
                for kv in v.split(':') {
                    let (key, val) = kv.split_once('=').unwrap_or((kv, "1"));
                    if let Some((_, allowed, why)) = CODEC_PARAMS.iter().find(|(k, _, _)| *k == key)
                        && allowed.is_none_or(|a| a != val)
                    {
                        return Err(breaks(format!("{arg} {v}"), why));
                    }
                }
                i += 1;
            }
            "vf" | "filter" if has_size => {
                return Err(breaks(
                    shown,
                    "the profile's `size` is a scale filter already; put one filter chain in `extra` without `size`, or use `size` alone",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn video(extra: &[&str]) -> VideoArgs {
        VideoArgs {
            codec: "libx264".into(),
            bitrate_kbps: Some(2000),
            size: None,
            preset: Some("veryfast".into()),
            tune: Some("zerolatency".into()),
            threads: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn audio() -> AudioArgs {
        AudioArgs {
            codec: "aac".into(),
            bitrate_kbps: Some(128),
            extra: Vec::new(),
        }
    }

    fn err(extra: &[&str]) -> String {
        Profile::new("hd", "ffmpeg", video(extra), audio())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn harmless_extras_pass() {
        for extra in [
            &["-profile:v", "high", "-bf", "2", "-flags", "+cgop"][..],
            &["-sc_threshold", "0"],
            &["-x264-params", "scenecut=0:open-gop=0:ref=3"],
            &["-maxrate", "3M", "-bufsize", "6M"],
            &["-vf", "yadif"],
        ] {
            assert!(
                Profile::new("hd", "ffmpeg", video(extra), audio()).is_ok(),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn breaking_extras_are_rejected_by_name() {
        for (extra, argument) in [
            (&["-g", "50"][..], "`-g 50`"),
            (&["-g:v", "50"], "`-g:v 50`"),
            (
                &["-force_key_frames", "expr:gte(t,n_forced*2)"],
                "`-force_key_frames expr:",
            ),
            (&["-x264opts", "keyint=60"], "`-x264opts keyint=60`"),
            (
                &["-x264-params", "ref=3:scenecut=40"],
                "`-x264-params ref=3:scenecut=40`",
            ),
            (&["-x265-params", "open-gop=1"], "`-x265-params open-gop=1`"),
            (&["-x264opts", "open-gop"], "`-x264opts open-gop`"),
            (&["-sc_threshold", "40"], "`-sc_threshold 40`"),
            (&["-f", "flv"], "`-f flv`"),
            (&["-mpegts_service_id", "7"], "`-mpegts_service_id 7`"),
            (&["-copyts"], "`-copyts`"),
            (&["-start_at_zero"], "`-start_at_zero`"),
            (&["-r", "25"], "`-r 25`"),
            (&["-map", "0"], "`-map 0`"),
        ] {
            let e = err(extra);
            assert!(e.starts_with("profile `hd`: "), "{e}");
            assert!(e.contains(argument), "{argument} in {e}");
            assert!(e.contains("would break encoder interchangeability"), "{e}");
        }
        assert_eq!(
            err(&["-g", "50"]),
            "profile `hd`: `-g 50` in video.extra would break encoder interchangeability: switchyard places keyframes where the source has them (-force_key_frames source), and an encoder's own GOP length counts from its own start; remove it (switchyard adds what failover needs by itself)"
        );
    }

    #[test]
    fn audio_extra_is_checked_too() {
        let mut a = audio();
        a.extra = vec!["-async".into(), "1".into()];
        let e = Profile::new("hd", "ffmpeg", video(&[]), a).expect_err("rejected");
        assert!(e.to_string().contains("in audio.extra"));
    }

    #[test]
    fn size_and_a_filter_conflict() {
        let mut v = video(&["-vf", "yadif"]);
        v.size = Some(VideoSize {
            width: 854,
            height: 480,
        });
        assert!(Profile::new("hd", "ffmpeg", v.clone(), audio()).is_err());
        v.extra.clear();
        assert!(Profile::new("hd", "ffmpeg", v.clone(), audio()).is_ok());
        v.size = Some(VideoSize {
            width: 855,
            height: 480,
        });
        assert!(matches!(
            Profile::new("hd", "ffmpeg", v, audio()),
            Err(ProfileError::BadSize { .. })
        ));
    }

    #[test]
    fn params_without_value() {
        assert!(matches!(
            Profile::new("hd", "ffmpeg", video(&["-x264-params"]), audio()),
            Err(ProfileError::MissingValue { .. })
        ));
    }

    #[test]
    fn missing_ffmpeg_says_how_to_install() {
        let e = FfmpegMissing {
            profile: "default".into(),
            path: "ffmpeg".into(),
        };
        assert!(e.to_string().contains("sudo apt install ffmpeg"));
    }
}
