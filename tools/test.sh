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
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

cargo nextest run --workspace --no-fail-fast "$@"
if [ $# -eq 0 ]; then
  # nextest does not run doctests.
  cargo test --workspace --doc --quiet
fi
