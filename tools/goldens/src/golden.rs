//! The golden record of one capture, built from ffprobe's view of it plus the oracle's own NAL
//! inspection of every video packet.
//!
//! Key order and names are part of the interface (switchyard's tests read these files).

use std::path::Path;

use anyhow::{Context, Result};

use crate::annexb::{AccessUnit, Codec};
use crate::ffprobe::{Probe, Stream};
use crate::json::Json;

#[derive(Debug, Default)]
struct Video {
    pid: u16,
    codec: String,
    frames: usize,
    idr_pts: Vec<Option<i64>>,
    ffprobe_keyframe_pts: Vec<Option<i64>>,
    cra_pts: Vec<Option<i64>>,
    bla_pts: Vec<Option<i64>>,
    non_idr_i_pts: Vec<Option<i64>>,
    recovery_point_pts: Vec<Option<i64>>,
}

#[derive(Debug)]
struct Audio {
    pid: u16,
    codec: String,
    frames: usize,
}

/// Builds the golden JSON for `file` from its ffprobe output.
pub fn golden(file: &Path, probe: &Probe) -> Result<Json> {
    let mut video: Vec<(usize, Codec, Video)> = Vec::new();
    let mut audio: Vec<(usize, Audio)> = Vec::new();
    for stream in &probe.streams {
        match stream.codec_type.as_deref() {
            Some("video") => {
                let codec = Codec::from_ffprobe(stream.codec())
                    .with_context(|| format!("stream {} of {}", stream.index, file.display()))?;
                let entry = Video {
                    pid: stream.pid()?,
                    codec: stream.codec().into(),
                    ..Video::default()
                };
                video.push((stream.index, codec, entry));
            }
            Some("audio") => {
                let entry = Audio {
                    pid: stream.pid()?,
                    codec: stream.codec().into(),
                    frames: 0,
                };
                audio.push((stream.index, entry));
            }
            _ => {}
        }
    }

    // ffprobe lists packets per stream in decode order (it may interleave streams differently
    // from the file, because the video parser holds an access unit until the next one starts).
    for packet in &probe.packets {
        if let Some((_, codec, v)) = video.iter_mut().find(|(i, _, _)| *i == packet.stream_index) {
            let au = AccessUnit::parse(*codec, &packet.bytes()?);
            v.frames += 1;
            let pts = packet.pts;
            if au.is_idr(*codec) {
                v.idr_pts.push(pts);
            }
            if packet.is_ffprobe_keyframe() {
                v.ffprobe_keyframe_pts.push(pts);
            }
            if au.is_cra(*codec) {
                v.cra_pts.push(pts);
            }
            if au.is_bla(*codec) {
                v.bla_pts.push(pts);
            }
            if au.is_non_idr_i(*codec) {
                v.non_idr_i_pts.push(pts);
            }
            if au.recovery_point {
                v.recovery_point_pts.push(pts);
            }
        } else if let Some((_, a)) = audio.iter_mut().find(|(i, _)| *i == packet.stream_index) {
            a.frames += 1;
        }
    }

    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", file.display()))?;
    let programs = probe
        .programs
        .iter()
        .map(|p| {
            let streams = p
                .streams
                .iter()
                .map(program_stream)
                .collect::<Result<Vec<_>>>()?;
            Ok(Json::Obj(vec![
                ("program_number", Json::Int(p.program_num.into())),
                ("pmt_pid", Json::Int(p.pmt_pid.into())),
                ("streams", Json::Arr(streams)),
            ]))
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(Json::Obj(vec![
        ("file", Json::Str(file_name.into())),
        (
            "video",
            Json::Arr(video.into_iter().map(|(_, _, v)| video_json(v)).collect()),
        ),
        (
            "audio",
            Json::Arr(audio.into_iter().map(|(_, a)| audio_json(a)).collect()),
        ),
        ("programs", Json::Arr(programs)),
    ]))
}

fn program_stream(stream: &Stream) -> Result<Json> {
    Ok(Json::Obj(vec![
        ("pid", Json::Int(stream.pid()?.into())),
        ("codec", Json::Str(stream.codec().into())),
    ]))
}

fn pts_list(pts: Vec<Option<i64>>) -> Json {
    Json::Arr(
        pts.into_iter()
            .map(|p| p.map_or(Json::Null, Json::Int))
            .collect(),
    )
}

fn video_json(v: Video) -> Json {
    Json::Obj(vec![
        ("pid", Json::Int(v.pid.into())),
        ("codec", Json::Str(v.codec)),
        ("frames", Json::Int(v.frames as i64)),
        ("idr_pts", pts_list(v.idr_pts)),
        ("ffprobe_keyframe_pts", pts_list(v.ffprobe_keyframe_pts)),
        ("cra_pts", pts_list(v.cra_pts)),
        ("bla_pts", pts_list(v.bla_pts)),
        ("non_idr_i_pts", pts_list(v.non_idr_i_pts)),
        ("recovery_point_pts", pts_list(v.recovery_point_pts)),
    ])
}

fn audio_json(a: Audio) -> Json {
    Json::Obj(vec![
        ("pid", Json::Int(a.pid.into())),
        ("codec", Json::Str(a.codec)),
        ("frames", Json::Int(a.frames as i64)),
    ])
}
