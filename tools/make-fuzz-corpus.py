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


def main():
    # Minimised crashes (`crash-*`, committed by hand after a fix) are kept: they are not made
    # from testdata and must keep being replayed.
    if CORPUS.exists():
        for f in CORPUS.rglob("*"):
            if f.is_file() and not f.name.startswith("crash-"):
                f.unlink()
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
    for name, data in rtp_seeds():
        write("rtp", name, data)
    print(f"wrote {sum(1 for _ in CORPUS.rglob('*') if _.is_file())} seeds under {CORPUS}")


if __name__ == "__main__":
    main()
