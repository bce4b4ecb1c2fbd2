"""Per-track media timelines of an export from moov/moof: duration and gaps from tfdt jumps.

Gaps are recorded by the exporter as time jumps (EX-23): a fragment's tfdt later than the end of
the previous fragment of the same track. Only box headers and the small trun tables are read.
"""

from __future__ import annotations

import dataclasses
import struct

from app.formats.bmff.box import Box, BoxError, Buffer, find, payload

#: Most samples in one trun accepted (a 10-minute 60 fps fragment has 36,000).
MAX_TRUN_SAMPLES = 1_000_000
#: Most fragments (moof) walked for the timeline.
MAX_FRAGMENTS = 1_000_000

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


@dataclasses.dataclass(slots=True)
class TrackTimeline:
    """One track: timescale, media time span [start, end) and gaps as (start, end) media times."""

    track_id: int
    timescale: int
    start: int | None = None
    end: int | None = None
    gaps: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    overlaps: int = 0
    fragments: int = 0
    default_duration: int = 0

    def to_ns(self, media_time: int) -> int:
        return media_time * 1_000_000_000 // self.timescale

    @property
    def duration_ns(self) -> int:
        if self.start is None or self.end is None:
            return 0
        return self.to_ns(self.end - self.start)


def _u32(data: bytes, pos: int) -> int:
    if pos + 4 > len(data):
        raise BoxError(f"field at payload offset {pos} runs past a {len(data)}-byte box")
    return int(_U32.unpack_from(data, pos)[0])


def _u64(data: bytes, pos: int) -> int:
    if pos + 8 > len(data):
        raise BoxError(f"field at payload offset {pos} runs past a {len(data)}-byte box")
    return int(_U64.unpack_from(data, pos)[0])


def _version(data: bytes, what: str) -> int:
    if not data:
        raise BoxError(f"{what} box has no version/flags")
    return data[0]


def _one(buf: Buffer, parent: Box, kind: bytes) -> Box | None:
    found = find(buf, parent, kind)
    return found[0] if found else None


def read_timelines(buf: Buffer, top: list[Box]) -> dict[int, TrackTimeline]:
    """Timelines per track ID from moov (timescales, plain durations) and every moof."""
    tracks: dict[int, TrackTimeline] = {}
    for moov in (b for b in top if b.type == b"moov"):
        for trak in find(buf, moov, b"trak"):
            tkhd = _one(buf, trak, b"tkhd")
            mdia = _one(buf, trak, b"mdia")
            mdhd = _one(buf, mdia, b"mdhd") if mdia is not None else None
            if tkhd is None or mdhd is None:
                continue
            head = payload(buf, tkhd)
            track_id = _u32(head, 20 if _version(head, "tkhd") == 1 else 12)
            media = payload(buf, mdhd)
            if _version(media, "mdhd") == 1:
                timescale, duration = _u32(media, 20), _u64(media, 24)
            else:
                timescale, duration = _u32(media, 12), _u32(media, 16)
            if timescale == 0:
                raise BoxError(f"mdhd of track {track_id} has timescale 0")
            timeline = TrackTimeline(track_id, timescale)
            if duration:
                timeline.start, timeline.end = 0, duration
            tracks[track_id] = timeline
        for mvex in find(buf, moov, b"mvex"):
            for trex in find(buf, mvex, b"trex"):
                data = payload(buf, trex)
                track = tracks.get(_u32(data, 4))
                if track is not None:
                    track.default_duration = _u32(data, 12)
    moofs = [b for b in top if b.type == b"moof"]
    if len(moofs) > MAX_FRAGMENTS:
        raise BoxError(f"{len(moofs)} fragments exceed MAX_FRAGMENTS={MAX_FRAGMENTS}")
    for moof in moofs:
        for traf in find(buf, moof, b"traf"):
            _fragment(buf, traf, tracks)
    return tracks


def _fragment(buf: Buffer, traf: Box, tracks: dict[int, TrackTimeline]) -> None:
    tfhd = _one(buf, traf, b"tfhd")
    tfdt = _one(buf, traf, b"tfdt")
    if tfhd is None or tfdt is None:
        raise BoxError(f"traf at offset {traf.offset} lacks tfhd or tfdt (EX-05)")
    head = payload(buf, tfhd)
    flags = _u32(head, 0) & 0xFFFFFF
    track = tracks.get(_u32(head, 4))
    if track is None:
        raise BoxError(f"traf at offset {traf.offset} names unknown track {_u32(head, 4)}")
    pos = 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
    default_duration = _u32(head, pos) if flags & 0x8 else track.default_duration
    decode = payload(buf, tfdt)
    base = _u64(decode, 4) if _version(decode, "tfdt") == 1 else _u32(decode, 4)
    total = sum(_trun_duration(buf, trun, default_duration) for trun in find(buf, traf, b"trun"))
    if track.fragments == 0 or track.end is None:
        # The first fragment defines the span (a moov duration, if any, describes no samples).
        track.start, track.end = base, base + total
    else:
        if base > track.end:
            track.gaps.append((track.end, base))
        elif base < track.end:
            track.overlaps += 1
        track.end = max(track.end, base + total)
    track.fragments += 1


def _trun_duration(buf: Buffer, trun: Box, default_duration: int) -> int:
    data = payload(buf, trun)
    flags = _u32(data, 0) & 0xFFFFFF
    count = _u32(data, 4)
    if count > MAX_TRUN_SAMPLES:
        raise BoxError(f"trun at offset {trun.offset}: {count} samples > {MAX_TRUN_SAMPLES}")
    if not flags & 0x100:
        return count * default_duration
    pos = 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    stride = 4 * bin(flags & 0xF00).count("1")
    if pos + count * stride > len(data):
        raise BoxError(f"trun at offset {trun.offset} is shorter than its {count} samples")
    return sum(_U32.unpack_from(data, pos + i * stride)[0] for i in range(count))
