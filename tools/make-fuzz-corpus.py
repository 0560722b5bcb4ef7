#!/usr/bin/env python3
"""Regenerates the committed fuzz seed corpora in fuzz/corpus/<target>/ from testdata/.

Seeds are small slices of the real captures: single packets, PSI payloads, PES headers, the
start of video access units, and the first packets of every capture (clean and damaged). For
targets whose harness reads a leading "chunking seed" byte (resync, psi, nal, probe,
stream_buffer; see src/fuzz_harness.rs), every seed starts with one (stream_buffer: three bytes). Usage: tools/make-fuzz-corpus.py
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
    print(f"wrote {sum(1 for _ in CORPUS.rglob('*') if _.is_file())} seeds under {CORPUS}")


if __name__ == "__main__":
    main()
