#!/usr/bin/env bash
# Installs what the test suite needs, if it is missing, then runs the whole
# suite: unit, property and golden tests, the ffprobe oracle recomputing the
# goldens live, the CLI tests, the fuzz-corpus replay and the SRT tests with
# real libsrt callers (ffmpeg, srt-live-transmit). Extra arguments go
# to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  echo "test.sh: installing ffmpeg (Debian package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg
fi
if ! command -v srt-live-transmit >/dev/null; then
  # tests/srt_callers.rs: a libsrt caller besides ffmpeg.
  echo "test.sh: installing srt-tools (Debian package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq srt-tools
fi
if ! command -v gst-launch-1.0 >/dev/null || ! gst-inspect-1.0 srtsink >/dev/null 2>&1; then
  # tests/relay.rs: GStreamer's srtsink as a publisher.
  echo "test.sh: installing GStreamer with its SRT plugin (Debian packages)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

# Every external tool is installed above: the end-to-end tests must not
# skip a case for a missing tool here.
export SWITCHYARD_REQUIRE_TOOLS=1
cargo nextest run --workspace --no-fail-fast "$@"
if [ $# -eq 0 ]; then
  # nextest does not run doctests.
  cargo test --workspace --doc --quiet
fi
