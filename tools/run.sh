#!/usr/bin/env bash
# Runs the router (release build). Installs ffmpeg first if it is missing:
# the embedded default configuration encodes every stream with it.
# Arguments go to `switchyard run` (e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ffmpeg >/dev/null; then
  echo "run.sh: installing ffmpeg (Debian package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg
fi
exec cargo run --release --quiet -- run "$@"
