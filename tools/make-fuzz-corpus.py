#!/usr/bin/env python3
"""Regenerates the committed fuzz seed corpora in fuzz/corpus/<target>/ from testdata/.

Seeds are small slices of the real captures: single packets, PSI payloads, PES headers, the
start of video access units, and the first packets of every capture (clean and damaged). For
targets whose harness reads a leading "chunking seed" byte (resync, psi, nal, probe,
stream_buffer; see src/fuzz_harness.rs), every seed starts with one (stream_buffer: three bytes).

The `rtp` seeds are hand-made datagram scripts for `fuzz_harness::rtp` (format in its doc
comment: a config byte, then records that push synthesized packets, push raw datagrams or
advance the clock), one per receiver behaviour: in order, reordered within the window, loss
given up by time and by a full window, duplicates and late packets, the 16-bit wrap with
reordering, an SSRC change, a stray SSRC, a sequence jump (resync), a stray jump, wrong
payload type / odd payload sizes / CSRC+extension+padding, pushes without polls, and raw
malformed datagrams.

The `srt_gate` seeds are hand-built SRT datagrams (the constructions of the SRT prototype's
hostile peers: inductions, conclusions with every extension kind, key material with and without
keys, control packets of every type, NAK loss lists, data) and stream ids as text. The
`srt_endpoint` seeds are scripts for `fuzz_harness::srt_endpoint` (format in its doc comment):
a complete handshake behind the cookie check, data and control to the established
connections, every panic-table packet, player sends, floods and garbage.
The `splice` seeds are scripts for `fuzz_harness::splice` (format in its doc comment): two
captures interleaved with switches, and one capture fed as two related sources with a removal.

The `progress` seeds are the real ffmpeg stderr captures in testdata/progress/ (whole, and cut
into windows), each after a chunking seed byte, plus hand-made edge cases: a line longer than
MAX_LINE, `\r` line ends, N/A and padded values, bad values, invalid UTF-8.
The `health` seeds are observation scripts for `fuzz_harness::health` (format in its doc
comment): a healthy 30 fps encoder, a stall, a SIGSTOP, a slow one, a queue burst and recovery,
an exit; plus real /proc/PID/stat and /proc/stat lines as text.
Usage: tools/make-fuzz-corpus.py
"""
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "testdata"
CORPUS = ROOT / "fuzz" / "corpus"
P = 188


def packets(data):
    """Packets of a clean capture (start aligned, whole packets only)."""
    return [data[i:i + P] for i in range(0, len(data) - P + 1, P) if data[i] == 0x47]


def pid(pkt):
    return ((pkt[1] & 0x1F) << 8) | pkt[2]


def payload(pkt):
    afc = (pkt[3] >> 4) & 3
    if afc == 1:
        return pkt[4:]
    if afc == 3:
        return pkt[5 + pkt[4]:]
    return b""


def pusi(pkt):
    return bool(pkt[1] & 0x40)


# Captures whose first 200 packets seed the stream_buffer target (kept few: each seed is ~37 KB).
STREAM_BUFFER_SEEDS = {
    "h264_aac_closed_gop",
    "hevc_open_gop_cra",
    "h264_intra_refresh",
    "damaged_cc",
    "cbr_null_packets",
    "two_programs",
}


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}").write_bytes(data)


# --- splice: two sources and switches for fuzz_harness::splice ------------------------------
def splice_seeds():
    """Two captures interleaved packet by packet (control byte: source, a few ms), with switches
    back and forth and a removal, so the fuzzer starts from real splices."""
    a = packets((TESTDATA / "h264_aac_closed_gop.ts").read_bytes())[:260]
    b = packets((TESTDATA / "cbr_null_packets.ts").read_bytes())[:260]
    script = bytearray([0x80])
    for i, (pa, pb) in enumerate(zip(a, b)):
        if i == 90:
            script.append(0x81)
        if i == 180:
            script.append(0x80)
        script += bytes([0x04]) + pa + bytes([0x05]) + pb
    yield "two-captures", bytes(script)
    # Source 1 is the same capture (related clocks); the pending one is removed.
    script = bytearray([0x80])
    for i, pa in enumerate(a[:200]):
        if i == 60:
            script.append(0x81)
        if i == 120:
            script.append(0x41)
        script += bytes([0x04]) + pa + bytes([0x01]) + pa
    yield "related-removed", bytes(script)


# --- rtp: datagram scripts for fuzz_harness::rtp ---------------------------------------------
A, B, C = 0, 2, 3  # `misc & 3` picks SSRC 0xA, 0xA, 0xB, 0xC


def pkt(delta, ssrc=A, ms=0, size=0, flags=0):
    """Push a synthesized packet `delta` after the previous one. size: 0/1/2 = 1/2/7 TS packets,
    3 = odd length (`delta` bytes). flags: 0x04 PT 96, 0x20 CSRC+ext+padding, 0x40 no poll,
    0x80 delta x 251."""
    return bytes([0x80 | ms, delta & 0xFF, ssrc | (size << 3) | flags])


def wait(ms):
    return bytes([0xC0 | ms])


def raw(data):
    return bytes([len(data)]) + data


def rtp_header(seq, pt=33, first=0x80):
    return bytes([first, pt]) + seq.to_bytes(2, "big") + bytes(4) + (0xA).to_bytes(4, "big")


def rtp_seeds():
    w8 = 0x07  # window 8, max_delay 5 ms, takeover after 1 packet
    w4 = 0x53  # window 4, max_delay 25 ms, takeover after 2 packets
    ordered = b"".join(pkt(1, ms=1) for _ in range(24))
    yield "in-order", bytes([w8]) + ordered
    yield "in-order-7ts", bytes([w4]) + b"".join(pkt(1, ms=1, size=2) for _ in range(12))
    yield "reordered", bytes([w4]) + b"".join(
        pkt(d, ms=1) for d in [2, -1, 3, -1, 3, 2, -3, 2, 5, -3, 2, -1])
    yield "loss-by-time", bytes([w4]) + b"".join(pkt(1, ms=1) for _ in range(6)) + pkt(2) + pkt(
        1) + wait(30) + pkt(1) + wait(30)
    yield "loss-by-window", bytes([w4]) + b"".join(pkt(1) for _ in range(6)) + pkt(3) + b"".join(
        pkt(1) for _ in range(5))
    yield "dup-late", bytes([w8]) + b"".join(pkt(1, ms=1) for _ in range(10)) + pkt(0) + pkt(
        -3) + pkt(5) + wait(10) + pkt(-1) + pkt(2)
    yield "wrap", bytes([w8]) + pkt(-6) + b"".join(pkt(d, ms=1) for d in [2, -1, 3, 1, -2, 3, 1, 2, -1, 2])
    yield "ssrc-change", bytes([0x87]) + ordered[:30] + wait(40) + b"".join(
        pkt(1, ssrc=B, ms=1) for _ in range(10))
    yield "ssrc-change-early", bytes([0x87]) + ordered[:30] + b"".join(
        pkt(1, ssrc=C, ms=5) for _ in range(12)) + wait(40)
    yield "ssrc-stray", bytes([0x87]) + ordered[:30] + pkt(40, ssrc=B) + pkt(-40) + ordered + ordered[:45]
    yield "resync", bytes([0x47]) + ordered[:30] + wait(40) + pkt(100, flags=0x80) + b"".join(
        pkt(1, ms=1) for _ in range(6))
    yield "jump-stray", bytes([0x47]) + ordered[:30] + pkt(100, flags=0x80) + pkt(
        -100, flags=0x80) + ordered + ordered[:45]
    yield "pt-odd-ext", bytes([w4]) + pkt(1, flags=0x04) + pkt(1, size=3, ms=1) + pkt(
        1, flags=0x20) + pkt(1, size=1, flags=0x20) + pkt(1, flags=0x40) + pkt(1) + wait(63)
    # Pushes without polling: packets wait in the ready queue (once counted as released there).
    yield "no-poll", bytes([w4]) + b"".join(pkt(1, flags=0x40) for _ in range(10)) + pkt(
        3, flags=0x40) + pkt(-1, flags=0x40) + wait(30)
    yield "raw-datagrams", bytes([w4]) + raw(rtp_header(0) + b"\x47" + bytes(10)) + raw(
        rtp_header(1, first=0xA0) + b"\x47\x00\x02") + raw(rtp_header(2, first=0x91)) + raw(
        rtp_header(3, first=0x40)) + raw(b"\x80\x21\x00") + raw(bytes(0)) + raw(
        rtp_header(4, pt=200)) + wait(30)


# --- srt: datagrams for fuzz_harness::srt_gate, scripts for fuzz_harness::srt_endpoint -------
import struct


def srt_hdr(ctype, sub=0, info=0, dest=0):
    return struct.pack(">IIII", 0x80000000 | (ctype << 16) | sub, info, 0, dest)


def srt_cif(version, enc, flags, hstype, sockid, cookie, mss=1500):
    return struct.pack(">IHHIIIiIi", version, enc, flags, 0x12345678, mss, 8192, hstype, sockid,
                       cookie) + bytes([1, 0, 0, 127]) + bytes(12)


def srt_ext(t, body):
    body = body + bytes(-len(body) % 4)
    return struct.pack(">HH", t, len(body) // 4) + body


def le_words(text):
    text = text + bytes(-len(text) % 4)
    return b"".join(text[i:i + 4][::-1] for i in range(0, len(text), 4))


def srt_km(klen=16, kf=1, cipher=2):
    keys = bin(kf).count("1")
    return bytes([0x12, 0x20, 0x29, kf, 0, 0, 0, 0, cipher, 0, 2, 0, 0, 0, 4, klen // 4]) + \
        bytes([0xA5]) * (16 + klen * keys + 8)


HSREQ = srt_ext(1, struct.pack(">III", 0x010501, 0xBF, (120 << 16) | 120))


def sid(text):
    return srt_ext(5, le_words(text.encode()))


def induction(sockid):
    return srt_hdr(0) + srt_cif(4, 0, 2, 1, sockid, 0)


def conclusion(exts, sockid=0x77, enc=0, flags=5, mss=1500, cookie=0):
    return srt_hdr(0) + srt_cif(5, enc, flags, -1, sockid, cookie, mss=mss) + b"".join(exts)


def data_pkt(dest, seq, payload=b"\x47" + bytes(187)):
    return struct.pack(">IIII", seq, 0xE0000001, 0, dest) + payload


HOSTILE_HS = {
    "plain": [HSREQ, sid("live/cam1")],
    "access-control": [HSREQ, sid("#!::r=live/cam1,m=publish,u=alice,switchyard_role=backup")],
    "player": [HSREQ, sid("#!::r=live/a,m=request")],
    "km16": [HSREQ, srt_ext(3, srt_km(16)), sid("live/sec")],
    "km32-both-keys": [HSREQ, srt_ext(3, srt_km(32, kf=3)), sid("live/sec")],
    "km-gcm": [HSREQ, srt_ext(3, srt_km(16, cipher=3)), sid("live/sec")],
    "empty-sid": [HSREQ, srt_ext(5, b""), srt_ext(6, le_words(b"live"))],
    "congestion-file": [HSREQ, sid("live/open"), srt_ext(6, le_words(b"file"))],
    "filter-fec": [HSREQ, sid("live/open"), srt_ext(7, le_words(b"fec,cols:10"))],
    "group": [HSREQ, sid("live/open"), srt_ext(8, b"\x01\x00\x00\x00")],
    "ext-type-0": [HSREQ, sid("live/open"), srt_ext(0, b"")],
    "kmrsp-in-request": [HSREQ, srt_ext(4, srt_km(16)), sid("live/sec")],
    "km-no-keys": [HSREQ, srt_ext(3, srt_km(16, kf=0)), sid("live/sec")],
    "no-hsreq": [sid("live/open")],
    "latency-65s": [srt_ext(1, struct.pack(">III", 0x010501, 0xBF, 0xFDE8FDE8)), sid("live/x")],
}


def hostile_post(dest):
    return {
        "congestion-warning": srt_hdr(4, dest=dest) + bytes(4),
        "peer-error": srt_hdr(8, info=4000, dest=dest) + bytes(4),
        "user-sid": srt_hdr(0x7FFF, 5, dest=dest) + le_words(b"abcd"),
        "user-sid-empty": srt_hdr(0x7FFF, 5, dest=dest),
        "user-group-empty": srt_hdr(0x7FFF, 8, dest=dest),
        "nak-unterminated": srt_hdr(3, dest=dest) + struct.pack(">I", 0x80000005),
        "nak-range": srt_hdr(3, dest=dest) + struct.pack(">II", 0x80000005, 9),
        "km-refresh": srt_hdr(0x7FFF, 3, dest=dest) + srt_km(16),
        "km-refresh-no-keys": srt_hdr(0x7FFF, 3, dest=dest) + srt_km(16, kf=0),
        "ack-negative-rtt": srt_hdr(2, info=1, dest=dest) + struct.pack(">IiiI", 1, -2000000000,
                                                                         -2000000000, 100),
        "ack-full": srt_hdr(2, info=1, dest=dest) + struct.pack(">IIIIIII", 0x12345679, 100, 50,
                                                                8192, 1000, 5000, 5000),
        "ack2": srt_hdr(6, info=1, dest=dest),
        "keepalive": srt_hdr(1, dest=dest) + bytes(4),
        "drop-request": srt_hdr(7, info=1, dest=dest) + struct.pack(">II", 5, 9),
        "shutdown": srt_hdr(5, dest=dest) + bytes(4),
    }


def srt_gate_seeds():
    yield "induction", induction(0x77)
    for name, exts in HOSTILE_HS.items():
        yield "hs-" + name, conclusion(exts, flags=7 if "km" in name else 5)
    yield "mss-zero", conclusion(HOSTILE_HS["player"], mss=0)
    yield "enc-field-mismatch", conclusion(HOSTILE_HS["km16"], enc=4, flags=7)
    for name, pkt in hostile_post(0x1234).items():
        yield "post-" + name, pkt
    yield "data", data_pkt(0x1234, 7)
    yield "streamid-ffmpeg", b"%23%21%3A%3Ar%3Dlive%2Fcam1%2Cm%3Drequest"
    yield "streamid-roles", b"#!::r=live/cam1,s=backup,h=x,q=1,switchyard_role=main,u=bob"
    yield "km", srt_km(24)


def rec(tag, datagram):
    return bytes([tag]) + struct.pack(">H", len(datagram)) + datagram


def wait(units):
    return bytes([0xC0 | units])


SRC_A, SRC_B, STRANGER, A_OTHER = 0, 1, 2, 3
TO_A, TO_B, COOKIE = 0x04, 0x14, 0x08


def srt_endpoint_seeds():
    yield "handshake", rec(STRANGER | COOKIE, conclusion(HOSTILE_HS["plain"], sockid=0x99)) + \
        wait(63) * 3
    yield "handshake-player", rec(A_OTHER | COOKIE, conclusion(
        [HSREQ, sid("#!::r=live/a,m=request")], sockid=0x98)) + bytes([0x80, 188]) + bytes(188) + \
        wait(20)
    stream = b"".join(rec(SRC_A | TO_A, data_pkt(0, 0x12345678 + i)) for i in range(8))
    yield "publish", stream + wait(40) + rec(SRC_A | TO_A, hostile_post(0)["keepalive"]) + wait(63)
    yield "player-sends", b"".join(bytes([0x80, 200]) + bytes([0x47]) + bytes(199)
                                   for _ in range(5)) + wait(30) + \
        rec(SRC_B | TO_B, hostile_post(0)["nak-range"]) + rec(SRC_B | TO_B, hostile_post(0)["ack-full"]) + \
        wait(30)
    post = hostile_post(0)
    yield "hostile-post", b"".join(rec(SRC_A | TO_A, p) for p in post.values()) + wait(50)
    yield "hostile-post-player", b"".join(rec(SRC_B | TO_B, p) for p in post.values()) + wait(50)
    yield "hostile-handshakes", b"".join(
        rec(STRANGER | COOKIE, conclusion(exts, sockid=0x100 + i, flags=7 if "km" in n else 5))
        for i, (n, exts) in enumerate(HOSTILE_HS.items())) + wait(10)
    yield "forged-cookies", b"".join(rec(STRANGER, conclusion(HOSTILE_HS["plain"], sockid=i + 1,
                                                               cookie=i)) for i in range(20))
    yield "induction-flood", b"".join(rec(A_OTHER, induction(i + 1)) for i in range(30))
    yield "caps", b"".join(rec(A_OTHER | COOKIE, conclusion([HSREQ, sid(f"live/f{i}")],
                                                            sockid=0x200 + i)) for i in range(8))
    yield "wrong-peer", rec(STRANGER | TO_A, post["shutdown"]) + rec(SRC_A | TO_A, post["shutdown"]) + \
        wait(63)
    TO_C = 0x24
    enc = lambda seq: struct.pack(">IIII", seq, 0xE8000001, 0, 0) + bytes([0x5A]) * 1316
    yield "encrypted-publisher", b"".join(rec(TO_C, enc(1 + i)) for i in range(6)) + wait(40) + \
        rec(TO_C, srt_hdr(0x7FFF, 3) + srt_km(16, kf=3)) + rec(TO_C, post["nak-range"]) + \
        rec(TO_C, srt_hdr(0x7FFF, 4) + srt_km(16)) + wait(63)
    yield "garbage", rec(SRC_A, bytes(range(40))) + rec(STRANGER, bytes([0x80, 0]) + bytes(80)) + \
        rec(SRC_A | TO_A, bytes([0x80, 0]) + bytes(14) + bytes(range(60))) + wait(5)


def progress_seeds():
    for cap in sorted((TESTDATA / "progress").glob("*.txt")):
        data = cap.read_bytes()
        yield cap.stem, bytes([0]) + data
        yield cap.stem + "-split", bytes([5]) + data
        mid = len(data) // 2
        yield cap.stem + "-mid", bytes([77]) + data[mid: mid + 600]
    yield "long-line", bytes([200]) + b"x" * 5000 + b"\nframe=1\nprogress=continue\n"
    yield "long-value", bytes([3]) + b"frame=" + b"9" * 4200 + b"\nprogress=end\n"
    yield "cr-stats", bytes([1]) + b"frame=   16 fps=0.0 q=23.0 size=0kB\rspeed=   1x\r\nprogress=continue\r\n"
    yield "na-padded", bytes([0]) + b"bitrate=N/A\nspeed=N/A\nout_time=-00:00:01.400000\nout_time_ms=-1400000\nfps= 29.97\nprogress=continue\n"
    yield "bad-values", bytes([2]) + b"frame=-1\nspeed=infx\nfps=NaN\nout_time=99:99\ntotal_size=1e9\nprogress=maybe\n"
    yield "utf8", bytes([4]) + b"\xff\xfe[h264 @ 0x1] \xc3\xa9\nsp\xc3eed=1x\nprogress=end"


def health_seeds():
    def r(op, a, b):
        return bytes([op, a, b])
    # One 33 ms step: input bytes, input frame (+3000 ticks = b 30), stdout, output frame.
    frame = r(0, 33, 40) + r(1, 0, 30) + r(2, 10, 50) + r(3, 0, 30)
    second = frame * 30 + r(4, 0, 100) + r(5, 0, 1) + r(6, 0, 1)
    yield "healthy", second * 8
    yield "stall", second * 4 + (r(0, 33, 40) + r(1, 0, 30)) * 30 + r(8, 0, 0)
    yield "sigstop", second * 4 + (r(0, 33, 40) + r(1, 0, 30) + r(5, 0, 2)) * 20
    slow = (r(0, 33, 40) + r(1, 0, 30) + r(2, 14, 50) + r(3, 0, 21)) * 30 + r(4, 0, 85)
    yield "slow", second * 4 + slow * 8
    yield "queue-burst", second * 2 + r(6, 0, 200) + second * 2 + r(6, 0, 0) + second * 6 + r(8, 0, 0)
    yield "exit", second * 2 + r(7, 0, 0x7F) + second
    yield "startup-timeout", r(0, 1, 1) + r(0x88, 63, 0) + r(8, 0, 0)
    yield "proc-pid-stat", b"12345 (ff (m) peg) T 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 3 0 987654 1 2\n"
    yield "proc-stat", b"cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\ncpu0 1 2 3 4\ncpu1 1 2 3 4\n"


def main():
    # Regenerate the seeds, but keep the committed fuzzer finds (crash-*,
    # timeout-*): the replay test keeps them fixed.
    for old in CORPUS.rglob("*"):
        if old.is_file() and not old.name.startswith(("crash-", "timeout-")):
            old.unlink()
    captures = sorted(TESTDATA.glob("*.ts"))
    for cap in captures:
        data = cap.read_bytes()
        stem = cap.stem
        # probe / resync: the first 30 packets' worth of bytes (damaged files keep their damage
        # when it is that early; for the others take a window around the first damage too).
        head = data[: 30 * P]
        write("probe", stem, bytes([0]) + head)
        write("probe", stem + "-split", bytes([61]) + head)
        write("resync", stem, bytes([7]) + data[: 12 * P + 77])
        if stem in STREAM_BUFFER_SEEDS:
            # stream_buffer: chunking, ring/queue sizes and pace bytes, then 200 packets (two
            # GOPs of the 25 fps captures), small rings so that eviction and skips happen.
            write("stream_buffer", stem, bytes([0, 0x21, 0x5A]) + data[: 200 * P])
            write("stream_buffer", stem + "-tight", bytes([61, 0x03, 0x01]) + data[: 200 * P])
        if stem.startswith("damaged"):
            # A window from the middle, where the damage is.
            mid = len(data) // 2
            write("probe", stem + "-mid", bytes([13]) + data[mid: mid + 40 * P])
            write("resync", stem + "-mid", bytes([1]) + data[mid: mid + 8 * P])
            continue
        pkts = packets(data)
        video_pid = 0x100
        seen_pids = set()
        nal_seeds = 0
        pes_seeds = set()
        for i, pkt in enumerate(pkts):
            p = pid(pkt)
            # One packet of every kind (PID x PUSI x adaptation field control) for `packet`.
            kind = (p, pusi(pkt), (pkt[3] >> 4) & 3)
            if kind not in seen_pids:
                seen_pids.add(kind)
                write("packet", f"{stem}-{p:04x}", pkt)
            if p in (0, 0x1000, 0x1001) and pusi(pkt):
                write("psi", f"{stem}-{p:04x}", bytes([0]) + payload(pkt))
            if pusi(pkt) and p not in (0, 0x1000, 0x1001, 0x1FFF):
                pl = payload(pkt)
                if p not in pes_seeds:
                    pes_seeds.add(p)
                    write("pes", f"{stem}-{p:04x}", pl[:40])
                if p == video_pid and nal_seeds < 3:
                    # The access unit's start across this and the next video packets.
                    body = pl[9 + pl[8]:] if len(pl) > 9 else b""
                    for nxt in pkts[i + 1: i + 40]:
                        if pid(nxt) == video_pid:
                            body += payload(nxt)
                            if len(body) > 600:
                                break
                    write("nal", f"{stem}-{nal_seeds}", bytes([5]) + body[:600])
                    nal_seeds += 1
    for name, data in splice_seeds():
        write("splice", name, data)
    for name, data in health_seeds():
        write("health", name, data)
    for name, data in progress_seeds():
        write("progress", name, data)
    for name, data in rtp_seeds():
        write("rtp", name, data)
    for name, data in srt_gate_seeds():
        write("srt_gate", name, data)
    for name, data in srt_endpoint_seeds():
        write("srt_endpoint", name, data)
    print(f"wrote {sum(1 for _ in CORPUS.rglob('*') if _.is_file())} seeds under {CORPUS}")


if __name__ == "__main__":
    main()
