//! `[[profile]]`: named encoder profiles, and the built-in ones.
//!
//! Two profiles are built in: [`H264`] (x264 veryfast/zerolatency 854x480
//! at 1500 kbit/s, AAC 128 kbit/s, run with `[encoder] ffmpeg`), the
//! default of every stream, and [`PASSTHROUGH`] (no ffmpeg). A
//! `[[profile]]` of the same name replaces a built-in one; two
//! `[[profile]]` tables of one name are an error. The validation of what a
//! profile may pass to ffmpeg is [`Profile::new`]'s: its message is
//! reported at the profile's table.

use std::path::Path;

use super::error::ErrorKind;
use super::reader::{Field, Report, Section, with_article};
use crate::encoder::{AudioArgs, Profile, VideoArgs, VideoSize};

/// The built-in H.264/AAC profile, every stream's default.
pub const H264: &str = "h264";
/// The built-in profile that forwards the input unencoded.
pub const PASSTHROUGH: &str = "passthrough";

pub(super) const PROFILE_KEYS: &[&str] = &[
    "name",
    "ffmpeg",
    "passthrough",
    "video_codec",
    "video_bitrate",
    "size",
    "preset",
    "tune",
    "threads",
    "video_extra",
    "audio_codec",
    "audio_bitrate",
    "audio_extra",
];

/// The built-in profiles, run with `ffmpeg`.
pub(super) fn built_in(ffmpeg: &Path) -> Vec<Profile> {
    let h264 = Profile::new(
        H264,
        ffmpeg,
        VideoArgs {
            codec: "libx264".into(),
            bitrate_kbps: Some(1500),
            size: Some(VideoSize {
                width: 854,
                height: 480,
            }),
            preset: Some("veryfast".into()),
            tune: Some("zerolatency".into()),
            threads: None,
            extra: Vec::new(),
        },
        AudioArgs {
            codec: "aac".into(),
            bitrate_kbps: Some(128),
            extra: Vec::new(),
        },
    );
    // `h264` is valid (a unit test says so); were it not, it would be
    // missing and every stream naming it an error, not a panic.
    h264.into_iter()
        .chain([Profile::passthrough(PASSTHROUGH)])
        .collect()
}

/// One `[[profile]]` read from the file.
#[derive(Debug)]
pub(super) struct ReadProfile<'a> {
    pub(super) profile: Profile,
    pub(super) name: Field<'a>,
}

/// Reads the `[[profile]]` tables; `ffmpeg` is `[encoder] ffmpeg`. Returns
/// the valid ones, each name once, and the names of the invalid ones (so
/// that a stream naming one is not reported a second time).
pub(super) fn read_profiles<'a>(
    root: &Section<'a>,
    ffmpeg: &Path,
    report: &mut Report<'_>,
) -> (Vec<ReadProfile<'a>>, Vec<String>) {
    let mut profiles: Vec<ReadProfile<'a>> = Vec::new();
    let mut rejected = Vec::new();
    for section in root.tables("profile", "[[profile]]", report) {
        let read = match read_one(&section, ffmpeg, report) {
            Ok(read) => read,
            Err(Some(name)) => {
                rejected.push(name);
                continue;
            }
            Err(None) => continue,
        };
        if let Some(first) = profiles
            .iter()
            .find(|p| p.profile.name() == read.profile.name())
        {
            read.name.error(
                report,
                ErrorKind::Conflict,
                format!(
                    "profile names must be unique, and `{}` is used by {} (line {}) already",
                    read.profile.name(),
                    first.name.path.trim_end_matches(".name"),
                    report.line_of(first.name.span.as_ref()),
                ),
            );
            continue;
        }
        profiles.push(read);
    }
    (profiles, rejected)
}

/// A profile, or the error's profile name if it had a valid one.
fn read_one<'a>(
    section: &Section<'a>,
    ffmpeg: &Path,
    report: &mut Report<'_>,
) -> Result<ReadProfile<'a>, Option<String>> {
    section.check_keys(PROFILE_KEYS, report);
    let name_field = section.require(
        "name",
        "the name streams give in `profile = \"…\"`, such as \"hd\"",
        report,
    );
    let name = name_field.as_ref().and_then(|f| {
        let text = f.str(report)?;
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            f.invalid(
                report,
                format!(
                    "a profile name must be 1 to 64 letters, digits, `-`, `_` or `.`, got {text:?}"
                ),
            );
            return None;
        }
        Some(text.to_string())
    });
    let passthrough = section
        .get("passthrough")
        .and_then(|f| f.bool(report))
        .unwrap_or(false);
    if passthrough {
        for key in PROFILE_KEYS
            .iter()
            .filter(|k| !matches!(**k, "name" | "passthrough"))
        {
            if let Some(f) = section.get(key) {
                f.not_applicable(
                    report,
                    format!(
                        "`{key}` does not apply to a passthrough profile, which runs no ffmpeg; remove it or set passthrough = false"
                    ),
                );
            }
        }
        return match (name, name_field) {
            (Some(name), Some(field)) => Ok(ReadProfile {
                profile: Profile::passthrough(name),
                name: field,
            }),
            (name, _) => Err(name),
        };
    }

    let text = |key: &str, report: &mut Report<'_>| {
        section
            .get(key)
            .and_then(|f| f.str(report).map(str::to_string))
    };
    let ffmpeg = section
        .get("ffmpeg")
        .and_then(|f| f.program(report))
        .unwrap_or_else(|| ffmpeg.to_path_buf());
    let video = VideoArgs {
        codec: text("video_codec", report).unwrap_or_else(|| "libx264".into()),
        bitrate_kbps: section
            .get("video_bitrate")
            .and_then(|f| bitrate(&f, report)),
        size: section.get("size").and_then(|f| size(&f, report)),
        preset: text("preset", report),
        tune: text("tune", report),
        threads: section
            .get("threads")
            .and_then(|f| f.integer(0..=256, "", "0 lets ffmpeg choose", report)),
        extra: section
            .get("video_extra")
            .and_then(|f| args(&f, report))
            .unwrap_or_default(),
    };
    let audio = AudioArgs {
        codec: text("audio_codec", report).unwrap_or_else(|| "aac".into()),
        bitrate_kbps: section
            .get("audio_bitrate")
            .and_then(|f| bitrate(&f, report)),
        extra: section
            .get("audio_extra")
            .and_then(|f| args(&f, report))
            .unwrap_or_default(),
    };
    let (Some(name), Some(name_field)) = (name, name_field) else {
        return Err(None);
    };
    match Profile::new(name.clone(), ffmpeg, video, audio) {
        Ok(profile) => Ok(ReadProfile {
            profile,
            name: name_field,
        }),
        Err(e) => {
            report.push(
                &section.path,
                section.span.as_ref(),
                ErrorKind::Invalid,
                e.to_string(),
            );
            Err(Some(name))
        }
    }
}

/// `video_bitrate`/`audio_bitrate`: kbit/s as an integer, or a string
/// `"1500k"`, `"4M"`, `"2.5M"`.
fn bitrate(field: &Field<'_>, report: &mut Report<'_>) -> Option<u32> {
    const MAX_KBPS: u32 = 1_000_000;
    let kbps = if let Some(n) = field.item.as_integer() {
        u32::try_from(n).ok().filter(|n| (1..=MAX_KBPS).contains(n))
    } else if let Some(s) = field.item.as_str() {
        let s = s.trim();
        let (number, scale) = if let Some(n) = s.strip_suffix(['k', 'K']) {
            (n, 1.0)
        } else if let Some(n) = s.strip_suffix('M') {
            (n, 1000.0)
        } else {
            (s, f64::NAN)
        };
        number
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| (n * scale).round())
            .filter(|k| *k >= 1.0 && *k <= f64::from(MAX_KBPS))
            .map(|k| k as u32)
    } else {
        None
    };
    if kbps.is_none() {
        let got = match (field.item.as_str(), field.item.as_integer()) {
            (Some(s), _) => format!("{s:?}"),
            (_, Some(n)) => n.to_string(),
            _ => with_article(field.item.type_name()),
        };
        field.invalid(
            report,
            format!(
                "must be a bitrate in kbit/s (1 to {MAX_KBPS}) or a string such as \"1500k\" or \"4M\", got {got}"
            ),
        );
    }
    kbps
}

/// `size = "WxH"`.
fn size(field: &Field<'_>, report: &mut Report<'_>) -> Option<VideoSize> {
    let text = field.str(report)?;
    let parsed = text.split_once(['x', 'X']).and_then(|(w, h)| {
        Some(VideoSize {
            width: w.trim().parse().ok()?,
            height: h.trim().parse().ok()?,
        })
    });
    if parsed.is_none() {
        field.invalid(
            report,
            format!("must be WIDTHxHEIGHT in pixels, such as \"854x480\", got {text:?}"),
        );
    }
    parsed
}

/// `video_extra`/`audio_extra`: an array of strings, one ffmpeg argument
/// each.
fn args(field: &Field<'_>, report: &mut Report<'_>) -> Option<Vec<String>> {
    let Some(array) = field.item.as_array() else {
        field.invalid(
            report,
            "must be an array of ffmpeg arguments, one string each, such as [\"-profile:v\", \"high\"]",
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, value) in array.iter().enumerate() {
        match value.as_str() {
            Some(s) => out.push(s.to_string()),
            None => {
                report.push(
                    &format!("{}[{i}]", field.path),
                    value.span().as_ref(),
                    ErrorKind::WrongType,
                    format!(
                        "must be a string (one ffmpeg argument), got {}",
                        with_article(value.type_name())
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A `profile = "name"` key: one of `profiles`.
pub(super) fn read_profile_name(
    field: &Field<'_>,
    profiles: &[&str],
    report: &mut Report<'_>,
) -> Option<String> {
    let text = field.str(report)?;
    if profiles.contains(&text) {
        return Some(text.to_string());
    }
    let hint = match super::suggest::closest(text, profiles.iter().copied()) {
        Some(close) => format!(" (did you mean \"{close}\"?)"),
        None => String::new(),
    };
    field.invalid(
        report,
        format!(
            "no profile is named {text:?}{hint}; the profiles are {}: define it in a [[profile]] table",
            super::reader::one_of(profiles)
        ),
    );
    None
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    reason = "tests: a failed expectation is a failed test"
)]
mod tests {
    use super::super::testing::{assert_has_error, assert_one_error, config, errors};
    use super::super::{FailoverMode, Standby};
    use super::*;
    use crate::encoder::{StreamLayout, ffmpeg_args};

    #[test]
    fn built_in_profiles_exist() {
        let c = config("");
        let h264 = c.profile(H264).expect("h264 is built in");
        assert_eq!(h264.video().codec, "libx264");
        assert_eq!(h264.video().preset.as_deref(), Some("veryfast"));
        assert_eq!(h264.video().tune.as_deref(), Some("zerolatency"));
        assert_eq!(h264.audio().codec, "aac");
        assert_eq!(h264.ffmpeg(), Path::new("ffmpeg"));
        assert!(ffmpeg_args(h264, &StreamLayout::default()).is_some());
        assert!(c.profile(PASSTHROUGH).is_some_and(Profile::is_passthrough));
        assert_eq!(c.defaults.profile, H264);
        // The [encoder] binary is the built-in profile's.
        let c = config("[encoder]\nffmpeg = \"/opt/ff\"\n");
        assert_eq!(
            c.profile(H264).map(Profile::ffmpeg),
            Some(Path::new("/opt/ff"))
        );
    }

    #[test]
    fn every_key_is_read() {
        let c = config(
            "[[profile]]\nname = \"hd\"\nffmpeg = \"/usr/local/bin/ffmpeg\"\nvideo_codec = \"libx265\"\n\
             video_bitrate = \"4.5M\"\nsize = \"1280x720\"\npreset = \"fast\"\ntune = \"zerolatency\"\n\
             threads = 2\nvideo_extra = [\"-profile:v\", \"main\"]\naudio_codec = \"aac\"\n\
             audio_bitrate = 96\naudio_extra = [\"-ac\", \"2\"]\n\
             [[profile]]\nname = \"copy\"\npassthrough = true\n\
             [defaults]\nprofile = \"hd\"\nfailover_mode = \"hitless\"\nstandby = \"hot\"\n\
             [[stream]]\nid = \"a\"\nprofile = \"copy\"\nfailover_mode = \"low-latency\"\n",
        );
        let hd = c.profile("hd").expect("hd");
        assert_eq!(hd.ffmpeg(), Path::new("/usr/local/bin/ffmpeg"));
        assert_eq!(
            hd.video(),
            &VideoArgs {
                codec: "libx265".into(),
                bitrate_kbps: Some(4500),
                size: Some(VideoSize {
                    width: 1280,
                    height: 720
                }),
                preset: Some("fast".into()),
                tune: Some("zerolatency".into()),
                threads: Some(2),
                extra: vec!["-profile:v".into(), "main".into()],
            }
        );
        assert_eq!(
            hd.audio(),
            &AudioArgs {
                codec: "aac".into(),
                bitrate_kbps: Some(96),
                extra: vec!["-ac".into(), "2".into()],
            }
        );
        assert!(c.profile("copy").is_some_and(Profile::is_passthrough));
        assert_eq!(c.defaults.profile, "hd");
        assert_eq!(c.defaults.failover_mode, FailoverMode::Hitless);
        assert_eq!(c.defaults.standby, Standby::Hot);
        let s = c.streams.first().expect("a stream");
        assert_eq!(s.settings.profile, "copy");
        assert_eq!(s.settings.failover_mode, FailoverMode::LowLatency);
        assert_eq!(s.settings.standby, Standby::Hot);
        assert_eq!(
            c.stream_profile(s).map(Profile::name),
            Some("copy"),
            "resolved by name"
        );
    }

    #[test]
    fn a_file_profile_replaces_a_built_in_one() {
        let c = config("[[profile]]\nname = \"h264\"\nvideo_bitrate = 800\n");
        let names: Vec<&str> = c.profiles.iter().map(Profile::name).collect();
        assert_eq!(names, [H264, PASSTHROUGH]);
        assert_eq!(
            c.profile(H264).and_then(|p| p.video().bitrate_kbps),
            Some(800)
        );
    }

    #[test]
    fn unknown_profile_names() {
        assert_one_error(
            "[[profile]]\nname = \"hd\"\n[[stream]]\nid = \"a\"\nprofile = \"hdd\"\n",
            "stream[0].profile",
            (5, 11),
            ErrorKind::Invalid,
            "no profile is named \"hdd\" (did you mean \"hd\"?); the profiles are \"h264\", \"passthrough\" or \"hd\"",
        );
        assert_one_error(
            "[defaults]\nprofile = \"x\"\n",
            "defaults.profile",
            (2, 11),
            ErrorKind::Invalid,
            "no profile is named \"x\"; the profiles are",
        );
        assert_one_error(
            "[encoder]\ndefault_profile = \"sd\"\n",
            "encoder.default_profile",
            (2, 19),
            ErrorKind::Invalid,
            "no profile is named \"sd\"",
        );
        // A profile defined after its use is found.
        config("[[stream]]\nid = \"a\"\nprofile = \"late\"\n[[profile]]\nname = \"late\"\n");
    }

    #[test]
    fn duplicate_profiles() {
        assert_one_error(
            "[[profile]]\nname = \"hd\"\n\n[[profile]]\nname = \"hd\"\n",
            "profile[1].name",
            (5, 8),
            ErrorKind::Conflict,
            "profile names must be unique, and `hd` is used by profile[0] (line 2) already",
        );
    }

    #[test]
    fn profiles_that_break_interchangeability() {
        assert_one_error(
            "[[profile]]\nname = \"hd\"\nvideo_extra = [\"-g\", \"50\"]\n",
            "profile[0]",
            (1, 1),
            ErrorKind::Invalid,
            "profile `hd`: `-g 50` in video.extra would break encoder interchangeability: switchyard places keyframes where the source has them",
        );
        assert_one_error(
            "[api]\n\n[[profile]]\nname = \"sd\"\naudio_extra = [\"-async\", \"1\"]\n",
            "profile[0]",
            (3, 1),
            ErrorKind::Invalid,
            "profile `sd`: `-async 1` in audio.extra would break encoder interchangeability",
        );
        let e = errors("[[profile]]\nname = \"odd\"\nsize = \"853x480\"\n");
        assert_has_error(
            &e,
            "profile[0]",
            (1, 1),
            ErrorKind::Invalid,
            "profile `odd`: size 853x480 must have even, non-zero width and height",
        );
        // A stream naming a rejected profile is not reported again as unknown.
        let e = errors(
            "[[profile]]\nname = \"hd\"\nvideo_extra = [\"-r\", \"25\"]\n[[stream]]\nid = \"a\"\nprofile = \"hd\"\n",
        );
        assert_eq!(e.len(), 1, "{e:#?}");
    }

    #[test]
    fn value_rules() {
        assert_one_error(
            "[[profile]]\nvideo_codec = \"libx264\"\n",
            "profile[0].name",
            (1, 1),
            ErrorKind::Missing,
            "[[profile]] needs `name`",
        );
        assert_one_error(
            "[[profile]]\nname = \"h d\"\n",
            "profile[0].name",
            (2, 8),
            ErrorKind::Invalid,
            "letters, digits",
        );
        assert_one_error(
            "[[profile]]\nname = \"hd\"\nsize = \"1280*720\"\n",
            "profile[0].size",
            (3, 8),
            ErrorKind::Invalid,
            "must be WIDTHxHEIGHT in pixels, such as \"854x480\", got \"1280*720\"",
        );
        assert_one_error(
            "[[profile]]\nname = \"hd\"\nvideo_bitrate = \"fast\"\n",
            "profile[0].video_bitrate",
            (3, 17),
            ErrorKind::Invalid,
            "must be a bitrate in kbit/s",
        );
        assert_one_error(
            "[[profile]]\nname = \"hd\"\naudio_bitrate = 0\n",
            "profile[0].audio_bitrate",
            (3, 17),
            ErrorKind::Invalid,
            "got 0",
        );
        assert_one_error(
            "[[profile]]\nname = \"hd\"\nvideo_extra = [\"-bf\", 2]\n",
            "profile[0].video_extra[1]",
            (3, 23),
            ErrorKind::WrongType,
            "must be a string (one ffmpeg argument), got an integer",
        );
        assert_one_error(
            "[[profile]]\nname = \"copy\"\npassthrough = true\nvideo_codec = \"libx264\"\n",
            "profile[0].video_codec",
            (4, 1),
            ErrorKind::NotApplicable,
            "does not apply to a passthrough profile",
        );
        assert_one_error(
            "[defaults]\nfailover_mode = \"lowlatency\"\n",
            "defaults.failover_mode",
            (2, 17),
            ErrorKind::Invalid,
            "must be \"low-latency\" or \"hitless\", got \"lowlatency\" (did you mean \"low-latency\"?)",
        );
        assert_one_error(
            "[[stream]]\nid = \"a\"\nstandby = \"warm\"\n",
            "stream[0].standby",
            (3, 11),
            ErrorKind::Invalid,
            "must be \"none\" or \"hot\", got \"warm\"",
        );
    }
}
