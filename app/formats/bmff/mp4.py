"""Fragmented MP4 writer for exports: ftyp + moov, then moof/mdat pairs, sample bytes untouched.

Sans-IO apart from the binary file object it is handed (no asyncio, no threads). Time model
(export spec EX-22/EX-23 in shared/spec/replay-export-signing.md):

- Every track's media timeline starts at the same UTC instant, `origin_ns` (the earliest first
  frame of the file), so a sample's decode time is round((wall − origin) × timescale / 1 s).
  No edit lists: presentation time = decode time.
- A sample lasts until the next sample of its track: durations are differences of those rounded
  times, so they never drift from the wall clocks. The last sample before a gap, or of the file,
  lasts as long as the one before it (or a codec default when it is alone).
- A gap (a new recording run, or a wall-clock step longer than MAX_STEP_NS) ends the fragment;
  the next fragment's `tfdt` is the true media time after the gap, so the gap stays a gap.
- A fragment normally holds one GOP of the first video track (without video: about
  FRAGMENT_TARGET_NS of samples), and never more than MAX_FRAGMENT_BYTES of samples, which keeps
  the 32-bit `trun` data offsets far from overflow and the mdat headers 32-bit.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from app.core.errors import ConfigError
from app.core.media import Codec, CodecParams, TrackKind
from app.core.time import NS_PER_SECOND
from app.formats.bmff.box import box, box_header, cstring, full_box
from app.formats.bmff.sample_entry import codec_brand, picture_size, sample_entry

#: Version of the file layout this module writes; bump on any byte change (golden tests).
FORMAT_VERSION = 1

#: Track timescales (ticks per second): 90 kHz for video and metadata, the sample rate for audio.
VIDEO_TIMESCALE = 90_000
METADATA_TIMESCALE = 90_000
MOVIE_TIMESCALE = 1_000
#: Sample bytes gathered before a fragment is written regardless of GOP boundaries.
MAX_FRAGMENT_BYTES = 32 * 1024 * 1024
#: Largest single sample (a 4K intra picture is a few MB; trun offsets are signed 32-bit).
MAX_SAMPLE_BYTES = 256 * 1024 * 1024
#: Fragment length for files without a video track.
FRAGMENT_TARGET_NS = 2 * NS_PER_SECOND
#: A step between consecutive video/audio samples of one run longer than this is a time jump.
MAX_STEP_NS = 5 * NS_PER_SECOND
MAX_TRACKS = 255
#: Duration of a lone video or metadata sample with no neighbour to measure from.
DEFAULT_SAMPLE_NS = 40 * 1_000_000

#: Seconds from the ISO BMFF epoch (1904-01-01) to the Unix epoch.
ISO_EPOCH_OFFSET_S = 2_082_844_800

#: trun flags: data-offset, sample-duration, sample-size, sample-flags present.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200 | 0x000400
_TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
#: sample_flags: sample_depends_on=2 (an I picture) vs depends_on=1 + sample_is_non_sync_sample.
_SYNC_FLAGS = 0x02000000
_NON_SYNC_FLAGS = 0x01010000
_HALF_SECOND_NS = NS_PER_SECOND // 2
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_LANGUAGE_UND = 0x55C4
_HANDLERS = {
    TrackKind.VIDEO: (b"vide", "Custos video"),
    TrackKind.AUDIO: (b"soun", "Custos audio"),
    TrackKind.METADATA: (b"meta", "Custos ONVIF metadata"),
}


class Mp4Error(ConfigError):
    """Samples or tracks given to the MP4 writer cannot be written as asked."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrackSpec:
    """One output track: its MP4 track_ID (≥ 1, unique) and the stored codec parameters."""

    track_id: int
    params: CodecParams

    @property
    def timescale(self) -> int:
        kind = self.params.kind
        if kind is TrackKind.VIDEO:
            return VIDEO_TIMESCALE
        if kind is TrackKind.AUDIO:
            return self.params.sample_rate or self.params.clock_rate
        return METADATA_TIMESCALE


@dataclasses.dataclass(frozen=True, slots=True)
class Sample:
    """One access unit to write: stored bytes, capture wall clock, sync flag and its run."""

    data: bytes
    wall_ns: int
    keyframe: bool
    #: Samples of one uninterrupted recording run share this; a change means a gap before.
    run: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class TrackSummary:
    """What was written for one track; `origin_ns` is the UTC instant of media time 0 (cstb)."""

    track_id: int
    timescale: int
    origin_ns: int
    sample_count: int
    #: Wall clock of the first and last sample written (None when the track stayed empty).
    first_wall_ns: int | None
    last_wall_ns: int | None
    #: End of the last sample in track ticks (its decode time plus its duration).
    end_ticks: int
    #: (end of the sample before, start of the sample after) in wall ns, per gap.
    gaps: tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Mp4Summary:
    origin_ns: int
    duration_ns: int
    fragments: int
    size: int
    tracks: tuple[TrackSummary, ...]


def to_ticks(wall_ns: int, origin_ns: int, timescale: int) -> int:
    """Media time of a wall clock instant, rounded to the nearest tick of the timescale."""
    return ((wall_ns - origin_ns) * timescale + _HALF_SECOND_NS) // NS_PER_SECOND


def iso_time(unix_ns: int) -> int:
    """Unix ns → whole seconds since 1904-01-01 UTC (mvhd/tkhd/mdhd, suep ExportUnitTime)."""
    return unix_ns // NS_PER_SECOND + ISO_EPOCH_OFFSET_S


# ---------------------------------------------------------------- init segment


def init_segment(tracks: Sequence[TrackSpec], *, creation_ns: int) -> tuple[bytes, int]:
    """ftyp + moov for `tracks`; returns the bytes and the offset of mehd's duration field.

    Every duration in the moov is 0 except `mehd.fragment_duration`, which the writer patches
    at the end (all samples live in fragments).
    """
    _check_tracks(tracks)
    brands = [b"isom", b"iso6", b"mp41"]
    for spec in tracks:
        brand = codec_brand(spec.params.codec)
        if brand is not None and brand not in brands:
            brands.append(brand)
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 0x200), *brands)
    when = iso_time(creation_ns)
    mvhd = full_box(
        b"mvhd",
        1,
        0,
        struct.pack(">QQIQ", when, when, MOVIE_TIMESCALE, 0),
        struct.pack(">IH", 0x00010000, 0x0100),  # rate 1.0, volume 1.0
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", max(s.track_id for s in tracks) + 1),
    )
    traks = [_trak(spec, when) for spec in tracks]
    mehd_body = struct.pack(">Q", 0)
    mehd = full_box(b"mehd", 1, 0, mehd_body)
    trexs = [full_box(b"trex", 0, 0, struct.pack(">5I", s.track_id, 1, 0, 0, 0)) for s in tracks]
    mvex = box(b"mvex", mehd, *trexs)
    moov = box(b"moov", mvhd, *traks, mvex)
    mehd_value_offset = len(ftyp) + len(moov) - len(mvex) + 8 + len(mehd) - len(mehd_body)
    return ftyp + moov, mehd_value_offset


def _check_tracks(tracks: Sequence[TrackSpec]) -> None:
    if not 0 < len(tracks) <= MAX_TRACKS:
        raise Mp4Error(f"an export needs 1..{MAX_TRACKS} tracks, got {len(tracks)}")
    ids = [s.track_id for s in tracks]
    if len(set(ids)) != len(ids) or not all(0 < i <= 0xFFFF for i in ids):
        raise Mp4Error(f"track IDs must be unique and in 1..65535, got {ids}")
    for spec in tracks:
        if not 0 < spec.timescale <= 0xFFFFFFFF:
            raise Mp4Error(f"track {spec.track_id} has no usable timescale ({spec.timescale})")


def _trak(spec: TrackSpec, when: int) -> bytes:
    params = spec.params
    kind = params.kind
    width, height = picture_size(params) if kind is TrackKind.VIDEO else (0, 0)
    tkhd = full_box(
        b"tkhd",
        1,
        0x3,  # enabled, in movie
        struct.pack(">QQII", when, when, spec.track_id, 0),
        struct.pack(">Q", 0),  # duration: all samples are in fragments
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0x0100 if kind is TrackKind.AUDIO else 0, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(
        b"mdhd",
        1,
        0,
        struct.pack(">QQIQ", when, when, spec.timescale, 0),
        struct.pack(">HH", _LANGUAGE_UND, 0),
    )
    handler, name = _HANDLERS[kind]
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), cstring(name))
    if kind is TrackKind.VIDEO:
        media_header = full_box(b"vmhd", 0, 1, bytes(8))
    elif kind is TrackKind.AUDIO:
        media_header = full_box(b"smhd", 0, 0, bytes(4))
    else:
        media_header = full_box(b"nmhd", 0, 0)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry(params)),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


# ---------------------------------------------------------------- fragments


@dataclasses.dataclass(frozen=True, slots=True)
class TrackRun:
    """The samples of one track in one fragment: decode time of the first, then per sample its
    bytes, duration in ticks and sample_flags (parallel sequences)."""

    track_id: int
    base_ticks: int
    data: Sequence[bytes]
    durations: Sequence[int]
    flags: Sequence[int]


def fragment_header(sequence: int, runs: Sequence[TrackRun]) -> bytes:
    """moof (mfhd + one traf per run) followed by the mdat header; the sample bytes follow it.

    The mdat payload is the runs' sample bytes, run after run, in the given order.
    """
    sizes = [list(map(len, run.data)) for run in runs]
    entries = [_trun_entries(run, run_sizes) for run, run_sizes in zip(runs, sizes, strict=True)]
    run_bytes = [sum(run_sizes) for run_sizes in sizes]
    mdat_header = box_header(b"mdat", sum(run_bytes))
    # The moof's size does not depend on the data offsets it holds: measure, then fill in.
    placeholder = _moof(sequence, runs, entries, run_bytes, 0)
    data_start = len(placeholder) + len(mdat_header)
    return _moof(sequence, runs, entries, run_bytes, data_start) + mdat_header


def _trun_entries(run: TrackRun, sizes: list[int]) -> bytes:
    """The trun sample table (duration, size, flags per sample), packed in one call."""
    count = len(sizes)
    table = [0] * (3 * count)
    table[0::3] = run.durations
    table[1::3] = sizes
    table[2::3] = run.flags
    return struct.pack(f">{3 * count}I", *table)


def _moof(
    sequence: int,
    runs: Sequence[TrackRun],
    entries: Sequence[bytes],
    run_bytes: Sequence[int],
    data_start: int,
) -> bytes:
    trafs = []
    offset = data_start
    for run, table, size in zip(runs, entries, run_bytes, strict=True):
        trafs.append(
            box(
                b"traf",
                full_box(b"tfhd", 0, _TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", run.track_id)),
                full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base_ticks)),
                full_box(b"trun", 0, _TRUN_FLAGS, struct.pack(">Ii", len(run.data), offset), table),
            )
        )
        offset += size
    return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)


# ---------------------------------------------------------------- writer


class _Track:
    """Per-track state of the writer: the sample whose duration is still open, and ready ones.

    Runs once per sample, so the hot path avoids properties and repeated tick arithmetic.
    """

    def __init__(self, spec: TrackSpec, origin_ns: int) -> None:
        self.spec = spec
        self.timescale = spec.timescale
        self.origin_ns = origin_ns
        # Metadata comes in bursts with silences of any length; only a new run is a gap there.
        self.steps_can_gap = spec.params.kind is not TrackKind.METADATA
        self.pending: Sample | None = None
        self.pending_ticks = 0
        self.ready_data: list[bytes] = []
        self.ready_durations: list[int] = []
        self.ready_flags: list[int] = []
        self.ready_base = 0
        self.last_duration: int | None = None
        self.count = 0
        self.first_wall: int | None = None
        self.last_wall: int | None = None
        self.end_ticks = 0
        self.gaps: list[tuple[int, int]] = []

    def ticks(self, wall_ns: int) -> int:
        return to_ticks(wall_ns, self.origin_ns, self.timescale)

    def default_duration(self, sample: Sample) -> int:
        codec = self.spec.params.codec
        if codec in (Codec.PCMU, Codec.PCMA):
            return len(sample.data)  # one byte per sample
        if codec is Codec.AAC:
            return 1024
        return self.timescale * DEFAULT_SAMPLE_NS // NS_PER_SECOND

    def close_pending(
        self, successor: Sample | None, successor_ticks: int = 0, *, in_file: bool = True
    ) -> bool:
        """Give the open sample its duration (from `successor`, at `successor_ticks`, unless a
        gap); True on a gap. `in_file`: the successor is written to this file too (a gap to it
        is recorded)."""
        sample = self.pending
        assert sample is not None
        ticks = self.pending_ticks
        if successor is None:
            gap, step = True, None
        else:
            step = successor_ticks - ticks
            gap = successor.run != sample.run or (
                self.steps_can_gap and successor.wall_ns - sample.wall_ns > MAX_STEP_NS
            )
        if gap:
            duration = self.last_duration
            if duration is None:
                duration = self.default_duration(sample)
            if step is not None:
                duration = min(duration, step)  # never overlap what follows a short gap
        else:
            assert step is not None
            duration = self.last_duration = step
        if not self.ready_data:
            self.ready_base = ticks
        self.ready_data.append(sample.data)
        self.ready_durations.append(duration)
        self.ready_flags.append(_SYNC_FLAGS if sample.keyframe else _NON_SYNC_FLAGS)
        self.end_ticks = ticks + duration
        self.pending = None
        if gap and successor is not None and in_file:
            end_ns = sample.wall_ns + duration * NS_PER_SECOND // self.timescale
            self.gaps.append((end_ns, successor.wall_ns))
        return gap

    def take_run(self) -> TrackRun | None:
        if not self.ready_data:
            return None
        run = TrackRun(
            self.spec.track_id,
            self.ready_base,
            self.ready_data,
            self.ready_durations,
            self.ready_flags,
        )
        self.ready_data, self.ready_durations, self.ready_flags = [], [], []
        return run


class Mp4Writer:
    """Writes one fragmented MP4 file to `out`, from its current position.

    Feed samples with `add` (each track in wall-clock order; tracks interleaved roughly by
    time, so that fragments stay small), then call `finish` once. `creation_ns` is the export
    time written into mvhd/tkhd/mdhd; nothing reads the system clock, so output is reproducible.
    """

    def __init__(
        self,
        out: BinaryIO,
        tracks: Sequence[TrackSpec],
        *,
        origin_ns: int,
        creation_ns: int,
    ) -> None:
        self._out = out
        self._origin_ns = origin_ns
        self._start = out.tell()
        header, self._mehd_at = init_segment(tracks, creation_ns=creation_ns)
        self._tracks = {spec.track_id: _Track(spec, origin_ns) for spec in tracks}
        video = [s.track_id for s in tracks if s.params.kind is TrackKind.VIDEO]
        self._primary = self._tracks[video[0] if video else tracks[0].track_id]
        self._primary_is_video = bool(video)
        self._sequence = 0
        self._finished = False
        self._size = 0
        #: Sample bytes whose duration is known and that wait for the next fragment, all tracks.
        self._ready_bytes = 0
        self._write(header)

    @property
    def bytes_written(self) -> int:
        """Bytes of the file so far (buffered samples not included)."""
        return self._size

    @property
    def buffered_bytes(self) -> int:
        """Sample bytes added but not yet written."""
        return self._ready_bytes + sum(
            len(t.pending.data) for t in self._tracks.values() if t.pending is not None
        )

    def add(self, track_id: int, sample: Sample) -> None:
        """Queue one sample of a track; writes a fragment when one is complete."""
        if self._finished:
            raise Mp4Error("the MP4 writer has finished; no more samples")
        track = self._tracks.get(track_id)
        if track is None:
            raise Mp4Error(f"no track {track_id} in this file (tracks {sorted(self._tracks)})")
        wall = sample.wall_ns
        if wall < self._origin_ns:
            raise Mp4Error(
                f"track {track_id}: sample at {wall} ns precedes the file's media "
                f"origin {self._origin_ns} ns"
            )
        if len(sample.data) > MAX_SAMPLE_BYTES:
            raise Mp4Error(f"track {track_id}: sample of {len(sample.data)} bytes is too large")
        # to_ticks, inlined: this runs once per sample of every export.
        ticks = ((wall - self._origin_ns) * track.timescale + _HALF_SECOND_NS) // NS_PER_SECOND
        pending = track.pending
        if pending is not None:
            if wall < pending.wall_ns:
                raise Mp4Error(
                    f"track {track_id}: sample at {wall} ns goes back in time from "
                    f"{pending.wall_ns} ns"
                )
            self._ready_bytes += len(pending.data)
            if track.close_pending(sample, ticks):
                self._flush()  # the sample after a gap opens a fragment with its true tfdt
        elif track.count == 0:
            track.first_wall = wall
        track.count += 1
        track.last_wall = wall
        track.pending = sample
        track.pending_ticks = ticks
        if self._fragment_due(track, sample, ticks):
            self._flush()

    def _fragment_due(self, track: _Track, sample: Sample, ticks: int) -> bool:
        if self._ready_bytes >= MAX_FRAGMENT_BYTES:
            return True
        if track is not self._primary or not track.ready_data:
            return False
        if self._primary_is_video:
            return sample.keyframe
        span = ticks - track.ready_base
        return span * NS_PER_SECOND >= FRAGMENT_TARGET_NS * track.timescale

    def _flush(self) -> None:
        runs = [run for t in self._tracks.values() if (run := t.take_run()) is not None]
        self._ready_bytes = 0
        if not runs:
            return
        self._sequence += 1
        self._write(fragment_header(self._sequence, runs))
        for run in runs:
            # Sample bytes go out as they are: no joined copy of a fragment's payload.
            self._out.writelines(run.data)
            self._size += sum(map(len, run.data))

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)

    def finish(self, successors: Mapping[int, Sample] | None = None) -> Mp4Summary:
        """Write what is buffered and fix the movie duration; returns what the file holds.

        `successors` may give, per track, the first sample after this file (the next part or
        beyond the export's end): it sets the last sample's duration exactly.
        """
        if self._finished:
            raise Mp4Error("the MP4 writer has finished already")
        self._finished = True
        successors = successors or {}
        for track_id, track in self._tracks.items():
            if track.pending is not None:
                after = successors.get(track_id)
                after_ticks = 0 if after is None else track.ticks(after.wall_ns)
                track.close_pending(after, after_ticks, in_file=False)
        self._flush()
        duration_ns = max(
            (t.end_ticks * NS_PER_SECOND // t.timescale for t in self._tracks.values()),
            default=0,
        )
        movie_ticks = -(-duration_ns * MOVIE_TIMESCALE // NS_PER_SECOND)
        if self._out.seekable():
            end = self._out.tell()
            self._out.seek(self._start + self._mehd_at)
            self._out.write(struct.pack(">Q", movie_ticks))
            self._out.seek(end)
        return Mp4Summary(
            origin_ns=self._origin_ns,
            duration_ns=duration_ns,
            fragments=self._sequence,
            size=self._size,
            tracks=tuple(
                TrackSummary(
                    track_id=t.spec.track_id,
                    timescale=t.timescale,
                    origin_ns=self._origin_ns,
                    sample_count=t.count,
                    first_wall_ns=t.first_wall,
                    last_wall_ns=t.last_wall,
                    end_ticks=t.end_ticks,
                    gaps=tuple(t.gaps),
                )
                for t in self._tracks.values()
            ),
        )
