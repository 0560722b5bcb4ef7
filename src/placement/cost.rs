//! Expected CPU cost of a profile, in cores per real-time stream.
//!
//! Calibrated on DESIGN.md's measurements (Debian 12, ffmpeg 5.1, 1 thread,
//! 30 fps): 720p → 480p x264 veryfast ~0.19 core; 240p ultrafast ~0.03;
//! `-c copy` ~0. The model is output pixels × a per-preset cost, plus a
//! floor for demux, decode and mux; it is an estimate for admission, and
//! the measured host CPU (rule 1 of [`super`]) corrects it.

use crate::encoder::Profile;

/// Cores per output megapixel (at 30 fps) for x264 presets; 480p veryfast
/// (0.41 Mpx) → 0.19 core fixes `veryfast`, the others follow x264's
/// relative preset speeds.
fn x264_core_per_mpx(preset: &str) -> f64 {
    match preset {
        "ultrafast" => 0.12,
        "superfast" => 0.25,
        "veryfast" => 0.42,
        "faster" => 0.6,
        "fast" => 0.8,
        "medium" => 1.0,
        "slow" => 1.6,
        "slower" => 2.6,
        "veryslow" => 5.0,
        "placebo" => 12.0,
        _ => 1.0,
    }
}

/// Demux, decode and mux of a small stream.
const FLOOR: f64 = 0.02;

/// Expected cores per real-time stream of `profile`; 0 for passthrough.
pub fn estimated_cost(profile: &Profile) -> f64 {
    if profile.is_passthrough() {
        return 0.0;
    }
    let video = profile.video();
    if video.codec == "copy" {
        return FLOOR;
    }
    // Without a size the output keeps the input's; assume 720p.
    let mpx = video
        .size
        .map_or(1280.0 * 720.0, |s| f64::from(s.width) * f64::from(s.height))
        / 1e6;
    let per_mpx = x264_core_per_mpx(video.preset.as_deref().unwrap_or("medium"));
    let codec_factor = match video.codec.as_str() {
        "libx264" => 1.0,
        // x265 costs several times x264 at the same preset.
        "libx265" => 4.0,
        // Hardware and unknown encoders: assume x264.
        _ => 1.0,
    };
    FLOOR + mpx * per_mpx * codec_factor
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::encoder::{AudioArgs, VideoArgs, VideoSize};

    fn p(preset: &str, w: u32, h: u32) -> Profile {
        Profile::new(
            "p",
            "ffmpeg",
            VideoArgs {
                codec: "libx264".into(),
                bitrate_kbps: None,
                size: Some(VideoSize {
                    width: w,
                    height: h,
                }),
                preset: Some(preset.into()),
                tune: None,
                threads: Some(1),
                extra: Vec::new(),
            },
            AudioArgs {
                codec: "aac".into(),
                bitrate_kbps: None,
                extra: Vec::new(),
            },
        )
        .expect("valid")
    }

    #[test]
    fn matches_the_measured_figures() {
        let hd = estimated_cost(&p("veryfast", 854, 480));
        assert!((0.17..0.21).contains(&hd), "{hd}");
        let small = estimated_cost(&p("ultrafast", 426, 240));
        assert!((0.02..0.04).contains(&small), "{small}");
        assert_eq!(estimated_cost(&Profile::passthrough("pass")), 0.0);
    }
}
