#!/usr/bin/env bash
# Regenerates testdata/progress/*.txt: real stderr of ffmpeg 5.1 run with
# `-progress pipe:2 -stats_period 0.5 -nostats`, the flags switchyard gives
# every encoder (src/encoder/args.rs). The files are stderr exactly as the
# encoder shell reads it: ffmpeg's banner and log lines interleaved with the
# key=value progress blocks. Values (sizes, speeds, fps) differ per run and
# per machine; the tests assert structure, not those numbers.
#
# Usage: tools/make-progress-captures.sh
set -euo pipefail
cd "$(dirname "$0")/../testdata/progress"

PROGRESS=(-progress pipe:2 -stats_period 0.5 -nostats)

# 1. Real-time video-only encode (-re): speed settles near 1.0x, blocks every
#    0.5 s, the last block says progress=end.
ffmpeg -hide_banner -re -f lavfi -i testsrc2=size=160x90:rate=30 -t 2 \
  -c:v libx264 -preset ultrafast -f mpegts "${PROGRESS[@]}" -y /dev/null 2> x264_realtime.txt

# 2. A switchyard-style transcode: TS on stdin (fast probing), H.264 + AAC out
#    on stdout. Not paced, so speed is far above 1x; two stream_N_N_q keys.
ffmpeg -hide_banner -probesize 128k -analyzeduration 0 -f mpegts -i pipe:0 \
  -map 0:v:0 -map '0:a:0?' -c:v libx264 -preset ultrafast -c:a aac -b:a 48k \
  -f mpegts "${PROGRESS[@]}" pipe:1 < ../h264_aac_closed_gop.ts 2> stdin_transcode.txt > /dev/null

# 3. The same from a damaged input, paced (-re): ffmpeg's warnings (corrupt
#    packets, decoder errors) interleave with the progress blocks.
ffmpeg -hide_banner -re -probesize 128k -analyzeduration 0 -f mpegts -i pipe:0 \
  -map 0:v:0 -map '0:a:0?' -c:v libx264 -preset ultrafast -c:a aac -b:a 48k \
  -f mpegts "${PROGRESS[@]}" pipe:1 < ../damaged_garbage.ts 2> damaged_warnings.txt > /dev/null

rm -f x264.txt
wc -c ./*.txt
