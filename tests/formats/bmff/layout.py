"""Test-side reading of fragmented MP4 files with the lead's box reader: samples per track."""

from __future__ import annotations

import dataclasses
import struct

from app.formats.bmff import box as bx


@dataclasses.dataclass(frozen=True)
class ReadSample:
    decode_ticks: int
    duration: int
    flags: int
    data: bytes
    #: Sequence number of the fragment that holds it.
    fragment: int


@dataclasses.dataclass(frozen=True)
class ReadFile:
    top: list[bytes]
    timescales: dict[int, int]
    sample_entries: dict[int, bytes]
    samples: dict[int, list[ReadSample]]
    #: (sequence, track_id, tfdt version, tfdt) of every traf, in file order.
    trafs: list[tuple[int, int, int, int]]
    mehd_duration: int


def read(buf: bytes) -> ReadFile:
    top = list(bx.iter_boxes(buf))
    moov = bx.find_one(buf, None, b"moov")
    timescales: dict[int, int] = {}
    entries: dict[int, bytes] = {}
    for trak in bx.find(buf, moov, b"trak"):
        tkhd = bx.find_one(buf, trak, b"tkhd")
        track_id = struct.unpack_from(">I", buf, tkhd.payload_offset + 4 + 16)[0]
        mdia = bx.find_one(buf, trak, b"mdia")
        mdhd = bx.find_one(buf, mdia, b"mdhd")
        timescales[track_id] = struct.unpack_from(">I", buf, mdhd.payload_offset + 4 + 16)[0]
        stbl = bx.find_one(buf, bx.find_one(buf, bx.find_one(buf, mdia, b"minf"), b"stbl"), b"stsd")
        entry = next(bx.children(buf, stbl, skip=8))
        entries[track_id] = entry.type
    mvex = bx.find_one(buf, moov, b"mvex")
    mehd = bx.find_one(buf, mvex, b"mehd")
    mehd_duration = struct.unpack_from(">Q", buf, mehd.payload_offset + 4)[0]
    samples: dict[int, list[ReadSample]] = {t: [] for t in timescales}
    trafs: list[tuple[int, int, int, int]] = []
    for moof in (b for b in top if b.type == b"moof"):
        seq = struct.unpack_from(">I", buf, bx.find_one(buf, moof, b"mfhd").payload_offset + 4)[0]
        for traf in bx.find(buf, moof, b"traf"):
            tfhd = bx.find_one(buf, traf, b"tfhd")
            flags = bx.full_box_header(buf, tfhd)[1]
            assert flags == 0x020000, f"tfhd flags {flags:#x}"
            track_id = struct.unpack_from(">I", buf, tfhd.payload_offset + 4)[0]
            tfdt = bx.find_one(buf, traf, b"tfdt")
            version = bx.full_box_header(buf, tfdt)[0]
            base = struct.unpack_from(">Q" if version else ">I", buf, tfdt.payload_offset + 4)[0]
            trafs.append((seq, track_id, version, base))
            trun = bx.find_one(buf, traf, b"trun")
            count, offset = struct.unpack_from(">Ii", buf, trun.payload_offset + 4)
            pos = moof.offset + offset
            t = base
            for i in range(count):
                dur, size, sflags = struct.unpack_from(
                    ">III", buf, trun.payload_offset + 12 + 12 * i
                )
                samples[track_id].append(ReadSample(t, dur, sflags, buf[pos : pos + size], seq))
                pos += size
                t += dur
    return ReadFile([b.type for b in top], timescales, entries, samples, trafs, mehd_duration)
