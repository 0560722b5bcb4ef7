#!/usr/bin/env bash
# Regenerates every capture in testdata/ (see testdata/README.md for what each one tests).
#
# Usage: tools/make-testdata.sh [OUTDIR]     (default: testdata/ next to tools/)
#
# Needs ffmpeg with libx264, libx265 and the native aac encoder, and python3 (for the damaged
# copies and the self-check at the end). Runs in well under a minute on 2 cores.
#
# Determinism: every source is a lavfi generator (testsrc2 / smptebars / sine), every encoder and
# the muxer run with bitexact flags, x264/x265 run single-threaded (x264's option SEI records the
# thread count, which would otherwise follow the machine's core count), x265 runs with info=0 (its
# info SEI records the CPU's SIMD flags), and the damage step uses a fixed seed. Output is byte-identical across runs with the same ffmpeg/x264/x265 build; another
# build (e.g. a newer libx264 writes a different version string into its SEI) gives other bytes, so
# regenerate the goldens (tools/goldens --write) whenever the captures are regenerated.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../testdata}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

for tool in ffmpeg ffprobe python3; do
    command -v "$tool" >/dev/null || { echo "make-testdata: $tool not found on PATH" >&2; exit 1; }
done

# 160x90 keeps every capture far below 1 MB. "-t" is applied per output, so every file has an
# exact duration independent of the generators.
VSRC="testsrc2=size=160x90"
ASRC="sine=frequency=440:sample_rate=48000"

# Flags shared by every encode: bitexact muxer/encoders, no metadata that carries versions or
# dates, mono AAC at 48 kHz, one AAC frame per PES (-pes_payload_size 0).
COMMON=(-hide_banner -nostdin -loglevel error -y)
BITEXACT=(-fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1)
AAC=(-c:a aac -b:a 48k -ac 1 -ar 48000)
X264=(-c:v libx264 -threads 1 -preset veryfast -pix_fmt yuv420p -sc_threshold 0)
X265_PRESET=(-c:v libx265 -preset ultrafast -pix_fmt yuv420p)
X265_FIXED="scenecut=0:bframes=2:frame-threads=1:pools=none:info=0:log-level=error"

run() {
    echo "make-testdata: $1" >&2
    shift
    ffmpeg "${COMMON[@]}" "$@"
}

# --- H.264 + AAC, closed GOP, IDR every second (25 fps, keyint 25), 2 B-frames. -------------
# Also serves as the 25 fps capture.
run h264_aac_closed_gop.ts \
    -f lavfi -i "$VSRC:rate=25" -f lavfi -i "$ASRC" -t 4 -map 0:v -map 1:a \
    "${X264[@]}" -g 25 -keyint_min 25 -bf 2 -x264-params open-gop=0 \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/h264_aac_closed_gop.ts"

# --- HEVC + AAC, closed GOP: an IDR every second (x265 writes IDR_N_LP, NAL 20). --------------
run hevc_aac_closed_gop.ts \
    -f lavfi -i "$VSRC:rate=25" -f lavfi -i "$ASRC" -t 4 -map 0:v -map 1:a \
    "${X265_PRESET[@]}" -x265-params "keyint=25:min-keyint=25:open-gop=0:$X265_FIXED" \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/hevc_aac_closed_gop.ts"

# --- H.264 open GOP: only the first picture is an IDR; every later GOP starts with a non-IDR
# I picture (NAL 1, recovery point SEI) followed in decode order by leading B pictures that
# reference the previous GOP. ffprobe flags those I pictures K. 24 fps, keyint 24 and fixed
# B-frame placement (b-adapt=0): with keyint 25 or adaptive B-frames x264 puts some GOP starts
# where no B pictures precede them, i.e. without leading pictures. -------------------------------
run h264_open_gop.ts \
    -f lavfi -i "$VSRC:rate=24" -f lavfi -i "$ASRC" -t 4 -map 0:v -map 1:a \
    "${X264[@]}" -g 24 -keyint_min 24 -bf 2 -x264-params open-gop=1:b-adapt=0 \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/h264_open_gop.ts"

# --- HEVC open GOP: CRA pictures (NAL 21) followed by RASL leading pictures (NAL 8/9).
# 24 fps with keyint 24: with x265's 2-B-frame mini-GOPs, keyint 25 lands the CRA where no
# B pictures precede it (no leading pictures), keyint 24 does not. ------------------------------
run hevc_open_gop_cra.ts \
    -f lavfi -i "$VSRC:rate=24" -f lavfi -i "$ASRC" -t 4 -map 0:v -map 1:a \
    "${X265_PRESET[@]}" -x265-params "keyint=24:min-keyint=24:open-gop=1:$X265_FIXED" \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/hevc_open_gop_cra.ts"

# --- H.264 periodic intra refresh: one IDR at the start, then a refresh wave per 25 frames; the
# wave starts are P pictures with a recovery point SEI, which ffprobe flags K. -----------------
run h264_intra_refresh.ts \
    -f lavfi -i "$VSRC:rate=25" -f lavfi -i "$ASRC" -t 4 -map 0:v -map 1:a \
    "${X264[@]}" -g 25 -keyint_min 25 -bf 2 -x264-params intra-refresh=1 \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/h264_intra_refresh.ts"

# --- Two programs (services) in one TS, each H.264 + AAC, on distinct PIDs and PMT PIDs. -------
run two_programs.ts \
    -f lavfi -i "$VSRC:rate=25" -f lavfi -i "$ASRC" \
    -f lavfi -i "smptebars=size=160x90:rate=25" -f lavfi -i "sine=frequency=1000:sample_rate=48000" \
    -t 3 -map 0:v -map 1:a -map 2:v -map 3:a \
    "${X264[@]}" -g 25 -keyint_min 25 -bf 2 -x264-params open-gop=0 \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 \
    -program program_num=1:title=a:st=0:st=1 -program program_num=2:title=b:st=2:st=3 \
    -f mpegts "$out/two_programs.ts"

# --- CBR mux: -muxrate pads the stream with null packets (PID 0x1FFF) to a constant 600 kbit/s;
# the video is kept well below that so the padding is substantial. -----------------------------
run cbr_null_packets.ts \
    -f lavfi -i "$VSRC:rate=25" -f lavfi -i "$ASRC" -t 3 -map 0:v -map 1:a \
    "${X264[@]}" -g 25 -keyint_min 25 -bf 2 -x264-params open-gop=0 \
    -b:v 200k -maxrate 200k -bufsize 200k \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -muxrate 600k -f mpegts "$out/cbr_null_packets.ts"

# --- Frame rates: 25 fps is h264_aac_closed_gop.ts; 60 fps with a 1 s GOP here. ---------------
run h264_60fps.ts \
    -f lavfi -i "$VSRC:rate=60" -f lavfi -i "$ASRC" -t 2 -map 0:v -map 1:a \
    "${X264[@]}" -g 60 -keyint_min 60 -bf 2 -x264-params open-gop=0 \
    "${AAC[@]}" "${BITEXACT[@]}" -pes_payload_size 0 -f mpegts "$out/h264_60fps.ts"

# --- Damaged copies of h264_aac_closed_gop.ts. Every position and count is fixed here and
# listed in testdata/README.md; the step is pure Python, no randomness beyond a seeded hash. ----
echo "make-testdata: damaged_*.ts" >&2
python3 - "$out" <<'PY'
import hashlib
import sys

out = sys.argv[1]
src = open(f"{out}/h264_aac_closed_gop.ts", "rb").read()
assert len(src) % 188 == 0, "source capture is not a whole number of packets"
packets = [src[i:i + 188] for i in range(0, len(src), 188)]


def garbage(seed: str, n: int) -> bytes:
    """n pseudo-random bytes from SHA-256 in counter mode: stable across Python versions."""
    buf = b""
    counter = 0
    while len(buf) < n:
        buf += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return buf[:n]


# damaged_garbage.ts: (offset in the original file, garbage length). No offset is a multiple of
# 188, so each insertion lands inside a packet and splits it: the parser must drop sync and find
# 0x47 again. The last run of garbage starts with 0x47, a fake sync byte, a trap for parsers that
# trust a single sync byte.
insertions = [(10_000, 7), (30_123, 100), (60_001, 188), (90_500, 1), (120_077, 333)]
data = bytearray()
prev = 0
for i, (offset, length) in enumerate(insertions):
    assert offset % 188 != 0 and offset < len(src)
    data += src[prev:offset]
    junk = bytearray(garbage(f"switchyard-testdata-{i}", length))
    if i == len(insertions) - 1:
        junk[0] = 0x47
    split = packets[offset // 188]
    print(f"make-testdata: damaged_garbage.ts: {length} bytes at original offset {offset} "
          f"(damaged-file offset {len(data)}), inside packet {offset // 188} "
          f"pid 0x{((split[1] & 0x1F) << 8) | split[2]:04x} at +{offset % 188}", file=sys.stderr)
    data += junk
    prev = offset
data += src[prev:]
open(f"{out}/damaged_garbage.ts", "wb").write(bytes(data))


# damaged_cc.ts: drop single whole packets (0-based packet numbers are in the README) of the
# video PID 0x100 and audio PID 0x101. Each drop is one continuity-counter discontinuity
# (ISO/IEC 13818-1 §2.4.3.3); no two drops on one PID are adjacent.
def pid(p: bytes) -> int:
    return ((p[1] & 0x1F) << 8) | p[2]


def pusi(p: bytes) -> bool:
    return bool(p[1] & 0x40)


def has_payload(p: bytes) -> bool:
    return bool(p[3] & 0x10)


# (pid, ordinal of the packet within that PID, 0-based). Video ordinal 201 starts a PES
# (PUSI=1), so that picture's PES header is lost too; the other video drops are mid-PES. Almost
# every audio packet starts a PES, so each audio drop loses one AAC frame's PES header.
drops = [(0x100, 30), (0x100, 151), (0x100, 201), (0x100, 400),
         (0x101, 30), (0x101, 90), (0x101, 141)]
ordinal = {}
drop_index = set()
for index, p in enumerate(packets):
    n = ordinal.get(pid(p), 0)
    ordinal[pid(p)] = n + 1
    if (pid(p), n) in drops:
        assert has_payload(p), f"packet {index} carries no payload: CC would not advance"
        drop_index.add(index)
assert len(drop_index) == len(drops), "a drop ordinal is past the end of its PID"
with open(f"{out}/damaged_cc.ts", "wb") as f:
    for index, p in enumerate(packets):
        if index not in drop_index:
            f.write(p)
for index in sorted(drop_index):
    p = packets[index]
    print(f"make-testdata: damaged_cc.ts: dropped packet {index} (byte {index * 188}) "
          f"pid 0x{pid(p):04x} pusi={int(pusi(p))} cc={p[3] & 0x0F}", file=sys.stderr)

# damaged_truncated.ts: the last packet cut to its first 100 bytes.
open(f"{out}/damaged_truncated.ts", "wb").write(src[:len(src) - 188 + 100])
PY

# --- Self-check: assert that each capture really has the property it exists for. This is a
# third, deliberately naive reading of the bytes (TS -> PES -> NAL), cross-checked against
# ffprobe's packet counts and PTS; it fails the script if a different ffmpeg/x264/x265 build changes the
# structure the tests rely on. ----------------------------------------------------------------
echo "make-testdata: self-check" >&2
python3 - "$out" <<'PY'
import json
import subprocess
import sys
from collections import Counter, defaultdict

out = sys.argv[1]
H264, HEVC, AAC = 0x1B, 0x24, 0x0F


def read_ts(path):
    data = open(path, "rb").read()
    usable = len(data) - len(data) % 188
    return [data[i:i + 188] for i in range(0, usable, 188)]


def payload(p):
    afc = (p[3] >> 4) & 3
    if not afc & 1:
        return b""
    return p[5 + p[4]:] if afc == 3 else p[4:]


def section(p):
    body = payload(p)
    return body[1 + body[0]:]  # skip pointer_field


def scan(path):
    """Per-PID CC errors, null packets, programs, and PES list (pts, es bytes) per ES PID."""
    packets = read_ts(path)
    last_cc, cc_errors, pmt_pids, streams = {}, Counter(), {}, {}
    pes = defaultdict(list)
    nulls = 0
    for p in packets:
        assert p[0] == 0x47, f"{path}: lost sync"
        pid = ((p[1] & 0x1F) << 8) | p[2]
        if pid == 0x1FFF:
            nulls += 1
            continue
        if p[3] & 0x10:
            cc = p[3] & 0x0F
            if pid in last_cc and cc != (last_cc[pid] + 1) % 16:
                cc_errors[pid] += 1
            last_cc[pid] = cc
        if pid == 0 and p[1] & 0x40:
            sec = section(p)
            n = ((sec[1] & 0x0F) << 8 | sec[2]) + 3 - 4
            for i in range(8, n, 4):
                number, pmt = sec[i] << 8 | sec[i + 1], (sec[i + 2] & 0x1F) << 8 | sec[i + 3]
                if number:
                    pmt_pids[pmt] = number
        elif pid in pmt_pids and p[1] & 0x40:
            sec = section(p)
            n = ((sec[1] & 0x0F) << 8 | sec[2]) + 3 - 4
            i = 12 + ((sec[10] & 0x0F) << 8 | sec[11])
            while i < n:
                es_pid = (sec[i + 1] & 0x1F) << 8 | sec[i + 2]
                streams[es_pid] = (pmt_pids[pid], sec[i])
                i += 5 + ((sec[i + 3] & 0x0F) << 8 | sec[i + 4])
        elif pid in streams:
            if p[1] & 0x40:
                pes[pid].append(bytearray(payload(p)))
            elif pes[pid]:
                pes[pid][-1] += payload(p)
    units = {}
    for pid, items in pes.items():
        units[pid] = []
        for b in items:
            assert b[:3] == b"\x00\x00\x01", f"{path}: PES without start code on 0x{pid:x}"
            pts = None
            if b[7] & 0x80:
                pts = ((b[9] >> 1) & 7) << 30 | b[10] << 22 | (b[11] >> 1) << 15 | b[12] << 7 | b[13] >> 1
            units[pid].append((pts, bytes(b[9 + b[8]:])))
    return dict(cc_errors=cc_errors, nulls=nulls, streams=streams, units=units,
                programs=set(pmt_pids.values()))


def nals(es, hevc):
    parts = es.split(b"\x00\x00\x01")[1:]
    return [(((n[0] >> 1) & 0x3F) if hevc else (n[0] & 0x1F), n) for n in parts if n]


def ue(bits, pos):
    zeros = 0
    while bits[pos + zeros] == "0":
        zeros += 1
    value = int(bits[pos + zeros:pos + 2 * zeros + 1], 2) - 1
    return value, pos + 2 * zeros + 1


def h264_slice_type(nal):
    rbsp = nal[1:24].replace(b"\x00\x00\x03", b"\x00\x00")
    bits = "".join(f"{b:08b}" for b in rbsp)
    _, pos = ue(bits, 0)
    return ue(bits, pos)[0] % 5


def classify(units, hevc):
    """Counts of picture kinds, and how many random access points have leading pictures."""
    kinds = Counter()
    leading = 0
    for k, (pts, es) in enumerate(units):
        types = nals(es, hevc)
        vcl = [(t, n) for t, n in types if (t <= 31 if hevc else 1 <= t <= 5)]
        first, nal = vcl[0]
        if hevc:
            kind = {19: "idr", 20: "idr", 21: "cra", 16: "bla", 17: "bla", 18: "bla"}.get(first)
            if first in (8, 9):
                kinds["rasl"] += 1
        else:
            kind = "idr" if first == 5 else ("i" if h264_slice_type(nal) == 2 else None)
            if any(t == 6 and n[1] == 6 for t, n in types):
                kinds["recovery_point"] += 1
        if kind:
            kinds[kind] += 1
            if kind != "idr" and k + 1 < len(units) and units[k + 1][0] < pts:
                leading += 1
    return kinds, leading


def ffprobe_pts(path):
    """PID -> list of packet PTS in ffprobe's order (decode order within a stream)."""
    probe = json.loads(subprocess.check_output(
        ["ffprobe", "-v", "error", "-show_entries", "stream=index,id:packet=stream_index,pts",
         "-of", "json", path]))
    pids = {s["index"]: int(s["id"], 16) for s in probe["streams"]}
    pts = defaultdict(list)
    for packet in probe["packets"]:
        pts[pids[packet["stream_index"]]].append(packet.get("pts"))
    return pts


# file -> expected (video picture kinds, programs); "leading" = random access points other than
# IDRs that are followed in decode order by a picture with a lower PTS (open GOP).
expect = {
    "h264_aac_closed_gop.ts": dict(idr=4, i=0, leading=0),
    "hevc_aac_closed_gop.ts": dict(idr=4, cra=0),
    "h264_open_gop.ts": dict(idr=1, i=3, recovery_point=3, leading=3),
    "hevc_open_gop_cra.ts": dict(idr=1, cra=3, leading=3),
    "h264_intra_refresh.ts": dict(idr=1, i=0, recovery_point=3),
    "two_programs.ts": dict(idr=3, i=0, programs=2),
    "cbr_null_packets.ts": dict(idr=3, i=0),
    "h264_60fps.ts": dict(idr=2, i=0),
}
failures = []
for name, want in expect.items():
    path = f"{out}/{name}"
    ts = scan(path)
    if sum(ts["cc_errors"].values()):
        failures.append(f"{name}: CC errors {dict(ts['cc_errors'])}")
    if ts["nulls"] != 0 and name != "cbr_null_packets.ts":
        failures.append(f"{name}: unexpected null packets")
    if name == "cbr_null_packets.ts" and ts["nulls"] < 100:
        failures.append(f"{name}: only {ts['nulls']} null packets")
    if len(ts["programs"]) != want.get("programs", 1):
        failures.append(f"{name}: programs {sorted(ts['programs'])}")
    probed = ffprobe_pts(path)
    for pid, (program, stream_type) in ts["streams"].items():
        # One PES = one ffprobe packet (AAC: -pes_payload_size 0), and ffprobe's pts is the raw
        # 33-bit PES PTS, no start-time offset applied.
        pes_pts = [pts for pts, _ in ts["units"].get(pid, [])]
        if pes_pts != probed.get(pid):
            failures.append(f"{name}: pid 0x{pid:x}: {len(pes_pts)} PES, ffprobe "
                            f"{len(probed.get(pid, []))} packets, or their PTS differ")
        if stream_type in (H264, HEVC):
            kinds, leading = classify(ts["units"][pid], stream_type == HEVC)
            got = dict(kinds, leading=leading)
            for key, value in want.items():
                if key != "programs" and got.get(key, 0) != value:
                    failures.append(f"{name}: pid 0x{pid:x}: {key} = {got.get(key, 0)}, want {value}")
            print(f"make-testdata: check {name} pid 0x{pid:x}: {dict(sorted(got.items()))}",
                  file=sys.stderr)
        elif stream_type != AAC:
            failures.append(f"{name}: unexpected stream type 0x{stream_type:x}")

cc = scan(f"{out}/damaged_cc.ts")["cc_errors"]
if dict(cc) != {0x100: 4, 0x101: 3}:
    failures.append(f"damaged_cc.ts: CC errors {dict(cc)}, want {{0x100: 4, 0x101: 3}}")

# damaged_garbage.ts, read by a reference resync: a packet is accepted when it starts with 0x47
# and so does the next one (or EOF); after a loss, sync is found again at the first 0x47 with
# 0x47 at +188 and +376. Every insertion then costs exactly its split packet plus the garbage.
data = open(f"{out}/damaged_garbage.ts", "rb").read()
pos, resyncs, accepted = 0, [], []
while pos + 188 <= len(data):
    if data[pos] == 0x47 and (pos + 188 >= len(data) or data[pos + 188] == 0x47):
        accepted.append(data[pos:pos + 188])
        pos += 188
        continue
    start = pos
    pos += 1
    while pos + 188 <= len(data) and not (
            data[pos] == 0x47
            and (pos + 188 >= len(data) or data[pos + 188] == 0x47)
            and (pos + 376 >= len(data) or data[pos + 376] == 0x47)):
        pos += 1
    resyncs.append((start, pos - start))
want_resyncs = [(9964, 195), (30087, 288), (60079, 376), (90723, 189), (120240, 521)]
if resyncs != want_resyncs:
    failures.append(f"damaged_garbage.ts: resyncs {resyncs}, want {want_resyncs}")
last_cc, garbage_cc = {}, Counter()
for p in accepted:
    pid = ((p[1] & 0x1F) << 8) | p[2]
    if p[3] & 0x10:
        if pid in last_cc and p[3] & 0x0F != (last_cc[pid] + 1) % 16:
            garbage_cc[pid] += 1
        last_cc[pid] = p[3] & 0x0F
if len(accepted) != 703 or dict(garbage_cc) != {0x100: 3, 0x101: 2}:
    failures.append(f"damaged_garbage.ts: {len(accepted)} packets, CC errors {dict(garbage_cc)}")

truncated = open(f"{out}/damaged_truncated.ts", "rb").read()
tail = truncated[len(truncated) - len(truncated) % 188:]
if len(truncated) // 188 != 707 or len(tail) != 100 or ((tail[1] & 0x1F) << 8 | tail[2]) != 0x101:
    failures.append("damaged_truncated.ts: expected 707 packets and a 100-byte tail on 0x101")

if failures:
    sys.exit("make-testdata: self-check FAILED:\n  " + "\n  ".join(failures))
print("make-testdata: self-check ok", file=sys.stderr)
PY

echo "make-testdata: done" >&2
ls -l "$out"/*.ts >&2
