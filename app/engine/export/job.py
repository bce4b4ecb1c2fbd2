"""The export job: a recording's time range → numbered, sealed MP4 parts, with progress and cancel.

Flow (the loop reads, one worker thread writes; the file layout is in app/formats/bmff/mp4.py):

1. Pick the tracks (all with data in the range, or the requested ones); number them video,
   audio, metadata. Each video track starts at its keyframe at or before the requested start;
   the other tracks start at the earliest of those instants (the export's real start).
2. Take an evidence lock on the range so retention cannot delete what is being exported.
3. Merge the tracks' frames by wall clock and cut the stream into chunks at the keyframes of
   the first video track (chunks.py, which also reads ahead). A part holds whole chunks, so every
   part starts with a keyframe and all tracks are cut at the same instant; a chunk that would
   push the part past `part_size_limit` (or a codec parameter change) starts the next part.
4. Each part is written to a temp file, gets its file-level meta (part 2's `build_meta`, with
   the set's UUID chain) and optionally a signature, and is renamed only when all parts are
   done. On error or cancel every temp file is deleted; nothing is left under a final name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import uuid as uuid_module
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError
from app.core.media import CodecParams, TrackKind
from app.core.time import NS_PER_SECOND, Clock, SystemClock
from app.engine.export import chunks
from app.engine.export.keys import Signer
from app.engine.export.parts import PartFile, PartIdentity
from app.engine.export.sign import sign_file
from app.engine.storage import FrameRef, Recording, Store, TrackMedia
from app.formats.bmff import mp4
from app.formats.bmff.mp4 import Sample, TrackSpec
from app.formats.oef.meta import TrackSource

log = logging.getLogger(__name__)

GIB = 1 << 30
DEFAULT_PART_SIZE_LIMIT = 4 * GIB
#: Smallest part size accepted (a part must hold at least one GOP and its boxes).
MIN_PART_SIZE_LIMIT = 1 << 20
#: Room kept in every part for the file-level meta and signing instances appended after it.
META_RESERVE_BYTES = 256 * 1024
#: A keyframe further than this before the requested start is from another stretch of recording.
MAX_PREROLL_NS = 60 * NS_PER_SECOND
#: Chunks handed to the writer thread and not yet written (each is about one GOP).
MAX_WRITES_IN_FLIGHT = 2
_FAR_FUTURE_NS = 1 << 62
_KIND_ORDER = {TrackKind.VIDEO: 0, TrackKind.AUDIO: 1, TrackKind.METADATA: 2}

_T = TypeVar("_T")
SignPart = Callable[[Path], None]


class ExportCancelledError(ConflictError):
    """The export was cancelled; no output file was left behind."""


@dataclasses.dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export. `tracks`: track tokens (None = every track with data in the range)."""

    recording: str
    start_ns: int
    end_ns: int
    out_path: Path
    tracks: tuple[str, ...] | None = None
    part_size_limit: int = DEFAULT_PART_SIZE_LIMIT
    operator: str = ""
    note: str | None = None
    #: Signs every part (its `note` goes into the instance's auib); None = unsigned parts.
    signer: Signer | None = None
    #: Keep the evidence lock after the export (the range stays protected from retention).
    keep_evidence_lock: bool = False
    #: The exporting unit as written into suep (EX-10).
    unit_name: str = "Custos"
    unit_url: str = ""
    unit_mac: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ExportProgress:
    """Reported after every chunk; `position_ns` and the counters only grow."""

    start_ns: int
    end_ns: int
    position_ns: int
    frames: int
    bytes: int
    part: int

    @property
    def fraction(self) -> float:
        span = self.end_ns - self.start_ns
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.position_ns - self.start_ns) / span))


@dataclasses.dataclass(frozen=True, slots=True)
class ExportedTrack:
    track_id: int
    token: str
    kind: TrackKind
    frames: int


@dataclasses.dataclass(frozen=True, slots=True)
class ExportPart:
    index: int
    path: Path
    uuid: bytes
    predecessor_uuid: bytes
    successor_uuid: bytes
    #: UTC instant of media time 0 of every track (the part's first frame) and the length.
    start_ns: int
    duration_ns: int
    size: int
    frames: int
    #: (end, start) wall ns of each interruption inside the part, any track.
    gaps: tuple[tuple[int, int], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ExportResult:
    recording: str
    requested_start_ns: int
    requested_end_ns: int
    #: The real start: the keyframe at or before the requested start (earliest over tracks).
    start_ns: int
    parts: tuple[ExportPart, ...]
    tracks: tuple[ExportedTrack, ...]
    #: The evidence lock left in place (keep_evidence_lock), else None.
    evidence_lock: int | None

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tracks)


@dataclasses.dataclass(slots=True)
class _Track:
    track_id: int
    token: str
    kind: TrackKind
    start_ns: int
    params: CodecParams
    run: int | None = None
    frames: int = 0


async def export_recording(
    store: Store,
    request: ExportRequest,
    *,
    progress: Callable[[ExportProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
    clock: Clock | None = None,
    new_uuid: Callable[[], bytes] | None = None,
) -> ExportResult:
    """Export `request` from `store`; see the module docstring. Runs on the engine loop.

    `clock` gives the export time (suep, mvhd), `new_uuid` the part UUIDs (tests pass fixed
    ones). Raises ExportCancelledError when `cancel` is set; nothing is left on disk then.
    """
    _check_request(request)
    recording = await store.recording(request.recording)
    tracks = await _select_tracks(store, request)
    start_ns = min(t.start_ns for t in tracks)
    for track in tracks:
        if track.kind is not TrackKind.VIDEO:
            track.start_ns = start_ns
    lock = await store.add_evidence_lock(
        request.recording, start_ns, request.end_ns, f"export to {request.out_path.name}"
    )
    sign: SignPart | None = None
    if request.signer is not None:
        sign = functools.partial(_sign_part, signer=request.signer, note=request.note)
    job = _Job(store, request, recording, tracks, start_ns, clock or SystemClock(), sign)
    job.new_uuid = new_uuid or (lambda: uuid_module.uuid4().bytes)
    job.progress = progress
    job.cancel = cancel
    kept = False
    try:
        parts = await job.run()
        kept = request.keep_evidence_lock
    finally:
        if not kept:
            await store.remove_evidence_lock(lock.id)
    return ExportResult(
        recording=request.recording,
        requested_start_ns=request.start_ns,
        requested_end_ns=request.end_ns,
        start_ns=start_ns,
        parts=tuple(parts),
        tracks=tuple(ExportedTrack(t.track_id, t.token, t.kind, t.frames) for t in tracks),
        evidence_lock=lock.id if kept else None,
    )


def _sign_part(path: Path, *, signer: Signer, note: str | None) -> None:
    sign_file(path, signer, note)


def _check_request(request: ExportRequest) -> None:
    if request.end_ns <= request.start_ns:
        raise ConfigError(
            f"export range is empty: end {request.end_ns} ns is not after start "
            f"{request.start_ns} ns"
        )
    if request.part_size_limit < MIN_PART_SIZE_LIMIT:
        raise ConfigError(
            f"part size limit {request.part_size_limit} bytes is below {MIN_PART_SIZE_LIMIT}"
        )


async def _select_tracks(store: Store, request: ExportRequest) -> list[_Track]:
    media = await store.track_media(request.recording)
    by_token = {m.track: m for m in media}
    if request.tracks is not None:
        unknown = [t for t in request.tracks if t not in by_token]
        if unknown:
            raise NotFoundError(f"recording {request.recording} has no track {unknown[0]!r}")
        chosen = [by_token[t] for t in request.tracks]
    else:
        chosen = list(media)
    chosen.sort(key=lambda m: (_KIND_ORDER[m.kind], m.track))
    tracks: list[_Track] = []
    for m in chosen:
        first = await _first_ref(store, request, m)
        if first is None:
            continue
        params = await store.params_for_frame(first)
        tracks.append(_Track(len(tracks) + 1, m.track, m.kind, first.wall_ns, params))
    if not tracks:
        raise NotFoundError(
            f"recording {request.recording} holds no media between {request.start_ns} and "
            f"{request.end_ns} ns"
        )
    return tracks


async def _first_ref(store: Store, request: ExportRequest, media: TrackMedia) -> FrameRef | None:
    """Where this track's export starts: the keyframe at/before start, else its first frame."""
    rec, token = request.recording, media.track
    if media.kind is TrackKind.VIDEO:
        key = await store.keyframe_at_or_before(rec, token, request.start_ns)
        if key is not None and key.wall_ns >= request.start_ns - MAX_PREROLL_NS:
            return key
    async with _closing(
        store.frames(rec, token, request.start_ns, request.end_ns, page=64)
    ) as refs:
        async for ref in refs:
            if ref.keyframe or media.kind is not TrackKind.VIDEO:
                return ref
    return None


@contextlib.asynccontextmanager
async def _closing(iterator: AsyncIterator[_T]) -> AsyncIterator[AsyncIterator[_T]]:
    """Close an async generator even when the loop over it stops early."""
    try:
        yield iterator
    finally:
        await _aclose(iterator)


async def _aclose(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class _Job:
    """State of one running export (loop side); the PartFile methods run on `_pool`."""

    def __init__(
        self,
        store: Store,
        request: ExportRequest,
        recording: Recording,
        tracks: list[_Track],
        start_ns: int,
        clock: Clock,
        sign: SignPart | None,
    ) -> None:
        self.store = store
        self.request = request
        self.tracks = tracks
        self.start_ns = start_ns
        self.sign = sign
        self.new_uuid: Callable[[], bytes] = lambda: uuid_module.uuid4().bytes
        self.progress: Callable[[ExportProgress], None] | None = None
        self.cancel: asyncio.Event | None = None
        self.export_time_ns = clock.wall_ns()
        self.identity = PartIdentity(
            unit_name=request.unit_name,
            unit_url=request.unit_url,
            unit_mac=request.unit_mac,
            export_time_ns=self.export_time_ns,
            operator=request.operator,
            sources=tuple(_source(recording, t) for t in tracks),
        )
        self.params = {t.track_id: t.params for t in tracks}
        self.primary = next((t for t in tracks if t.kind is TrackKind.VIDEO), None)
        self.parts: list[PartFile] = []
        self.sealed: list[ExportPart] = []
        self.committed: list[Path] = []
        self.frames = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: Worker jobs submitted and not yet awaited, oldest first (the pool runs them in order).
        self._inflight: list[asyncio.Future[Any]] = []

    async def run(self) -> list[ExportPart]:
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="custos-export")
        try:
            try:
                await self._write_all()
                for part in self.parts:
                    await self._on_worker(part.commit)
                    self.committed.append(part.final)
            except BaseException:
                await self._settle()
                await self._on_worker(self._discard_all)
                raise
        finally:
            await self._settle()
            self._pool.shutdown(wait=True)
        return self.sealed

    def _discard_all(self) -> None:
        for part in self.parts:
            part.discard()
        for path in self.committed:  # parts renamed before a later rename failed
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def _write_all(self) -> None:
        current: PartFile | None = None
        position = self.start_ns
        inputs = [chunks.TrackInput(t.track_id, t.token, t.kind, t.start_ns) for t in self.tracks]
        source = chunks.read_chunks(self.store, self.request.recording, inputs, self.request.end_ns)
        async with _closing(source) as chunk_iter:
            async for chunk in chunk_iter:
                if self.cancel is not None and self.cancel.is_set():
                    raise ExportCancelledError(f"export to {self.request.out_path} was cancelled")
                current = await self._write_chunk(current, chunk)
                for track, frames in zip(self.tracks, chunk.frames, strict=True):
                    track.frames += len(frames)
                self.frames += len(chunk.samples)
                position = max(position, chunk.samples[-1][1].wall_ns)
                self._report(position, current)
        if current is None:
            raise NotFoundError(f"no frames of {self.request.recording} in the export range")
        await self._on_worker(current.finish_media, await self._successors_after_end())
        await self._seal(current, successor=current.uuid)
        self._report(self.request.end_ns, None)

    async def _write_chunk(self, current: PartFile | None, chunk: chunks.Chunk) -> PartFile:
        """Hand `chunk` to the worker, in `current` or a new part; the part it went to."""
        changed = await self._params_changed(chunk)
        samples = chunk.samples
        origin = samples[0][1].wall_ns
        cost = self._cost(chunk)
        if current is None:
            current = await self._open_part(origin)
        elif changed or not self._fits(current, cost):
            # The part ends where this chunk starts: its last samples last until this one.
            await self._on_worker(current.finish_media, _firsts(samples))
            closed, current = current, await self._open_part(origin)
            await self._seal(closed, successor=current.uuid)
        if not self._fits(current, cost):
            raise LimitError(
                f"one GOP of {chunk.size} bytes at {origin} ns does not fit the part size "
                f"limit of {self.request.part_size_limit} bytes"
            )
        # Writing overlaps reading the next chunk; the pool's one thread keeps the order.
        self._submit(current.feed, samples)
        current.planned += cost
        while len(self._inflight) > MAX_WRITES_IN_FLIGHT:
            await asyncio.shield(self._inflight.pop(0))
        return current

    async def _params_changed(self, chunk: chunks.Chunk) -> bool:
        """Re-read codec parameters at run changes and video keyframes; True if any changed."""
        changed = False
        first = chunk.first
        for track, frames in zip(self.tracks, chunk.frames, strict=True):
            video = track.kind is TrackKind.VIDEO
            for frame in frames:
                ref = frame.ref
                if ref.run_id == track.run and not (ref.keyframe and video):
                    continue
                track.run = ref.run_id
                params = await self.store.params_for_frame(ref)
                if params != self.params[track.track_id]:
                    self.params[track.track_id] = params
                    changed = True
                    if frame is not first and track is not self.primary:
                        log.warning(
                            "export %s: %s parameters change inside a GOP at %d ns",
                            self.request.out_path.name,
                            track.token,
                            ref.wall_ns,
                        )
        return changed

    def _cost(self, chunk: chunks.Chunk) -> int:
        """Bytes `chunk` adds to a part at most: its data plus the boxes describing it."""
        runs = sum(len({f.ref.run_id for f in frames}) for frames in chunk.frames)
        fragments = 1 + runs + chunk.size // mp4.MAX_FRAGMENT_BYTES
        return chunk.size + 12 * len(chunk.samples) + fragments * (32 + 96 * len(self.tracks))

    def _fits(self, part: PartFile, cost: int) -> bool:
        need = part.planned + cost + META_RESERVE_BYTES
        return need <= self.request.part_size_limit

    async def _open_part(self, origin_ns: int) -> PartFile:
        index = len(self.parts) + 1
        specs = [TrackSpec(t.track_id, self.params[t.track_id]) for t in self.tracks]
        part = await self._on_worker(
            PartFile,
            index,
            self.request.out_path,
            self.new_uuid(),
            specs,
            origin_ns=origin_ns,
            creation_ns=self.export_time_ns,
        )
        self.parts.append(part)
        return part

    async def _seal(self, part: PartFile, *, successor: bytes) -> None:
        predecessor = self.parts[part.index - 2].uuid if part.index > 1 else part.uuid
        await self._on_worker(part.seal, self.identity, predecessor, successor, self.sign)
        summary = part.summary
        assert summary is not None
        self.sealed.append(
            ExportPart(
                index=part.index,
                path=part.final,
                uuid=part.uuid,
                predecessor_uuid=predecessor,
                successor_uuid=successor,
                start_ns=summary.origin_ns,
                duration_ns=summary.duration_ns,
                size=part.size,
                frames=sum(t.sample_count for t in summary.tracks),
                gaps=tuple(sorted({g for t in summary.tracks for g in t.gaps})),
            )
        )

    async def _successors_after_end(self) -> dict[int, Sample]:
        """The first frame of each track at/after the export's end, for exact last durations."""
        out: dict[int, Sample] = {}
        for track in self.tracks:
            refs = self.store.frames(
                self.request.recording, track.token, self.request.end_ns, _FAR_FUTURE_NS, page=1
            )
            async with _closing(refs) as found:
                async for ref in found:
                    out[track.track_id] = Sample(b"", ref.wall_ns, ref.keyframe, ref.run_id)
                    break
        return out

    def _report(self, position_ns: int, part: PartFile | None) -> None:
        if self.progress is None:
            return
        written = sum(p.size for p in self.sealed)
        if part is not None and part.index > len(self.sealed):
            written += part.writer.bytes_written
        self.progress(
            ExportProgress(
                start_ns=self.start_ns,
                end_ns=self.request.end_ns,
                position_ns=min(position_ns, self.request.end_ns),
                frames=self.frames,
                bytes=written,
                part=len(self.parts),
            )
        )

    def _submit(self, fn: Callable[..., _T], *args: object, **kw: object) -> asyncio.Future[_T]:
        assert self._pool is not None
        future = asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kw))
        self._inflight.append(future)
        return future

    async def _on_worker(self, fn: Callable[..., _T], *args: object, **kw: object) -> _T:
        """Run `fn` on the worker after everything submitted before it; its result."""
        future = self._submit(fn, *args, **kw)
        while self._inflight:
            # Shielded: a cancelled export still lets the thread finish before cleanup.
            await asyncio.shield(self._inflight[0])
            self._inflight.pop(0)
        return future.result()

    async def _settle(self) -> None:
        """Wait for the worker jobs in flight (a cancelled await does not stop the thread)."""
        inflight, self._inflight = self._inflight, []
        if inflight:
            await asyncio.wait(inflight)
        for future in inflight:
            if not future.cancelled():
                future.exception()  # retrieved: the caller reports its own error


def _firsts(samples: Sequence[tuple[int, Sample]]) -> dict[int, Sample]:
    out: dict[int, Sample] = {}
    for track_id, sample in samples:
        out.setdefault(track_id, sample)
    return out


def _source(recording: Recording, track: _Track) -> TrackSource:
    """suep entry of a track: the recording's source name and address (no MAC/line known)."""
    config = recording.config
    description = next((t.description for t in recording.tracks if t.token == track.token), "")
    name = config.name or recording.token
    if description:
        name = f"{name} — {description}"
    return TrackSource(
        track_id=track.track_id,
        name=name,
        url=config.address or config.source_id,
        mac="",
        line="",
    )
