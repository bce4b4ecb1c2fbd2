"""Export input: every track's frames, read a page ahead, cut into chunks merged by wall clock.

A chunk runs from one keyframe of the primary (first video) track to the next; every other
track is cut at the same instant, so a part can end after any chunk with all tracks aligned.
Without a primary track a chunk spans CHUNK_NS. Inside a chunk frames are ordered by (wall
clock, track index), each track keeping its stored order.

Speed (bench/export.py): the store is read in pages of up to READ_PAGE_BYTES, one `pread` per
run of consecutive frames of a segment, and the next page of each track is already being read
while the current one is cut and written. So at most one page per track is in flight beyond
the chunk being assembled; the chunk itself is bounded by MAX_CHUNK_BYTES.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
from collections.abc import AsyncGenerator, Sequence

from app.core.errors import LimitError
from app.core.media import TrackKind
from app.core.time import NS_PER_SECOND
from app.engine.storage import FrameRef, Store, StoredFrame
from app.formats.bmff.mp4 import Sample

#: Frame bytes per store read (a larger frame comes alone); one page per track is read ahead.
READ_PAGE_BYTES = 4 * 1024 * 1024
#: Frames per store read at most (audio and metadata frames are small).
READ_PAGE_FRAMES = 8192
#: A GOP larger than this (a camera that stopped sending keyframes) aborts the export.
MAX_CHUNK_BYTES = 1 << 30
#: Chunk length when the export has no video track.
CHUNK_NS = 2 * NS_PER_SECOND
#: Consumed frames kept at the head of a track's buffer before it is compacted.
_COMPACT_AFTER = 4096
_FAR_FUTURE_NS = 1 << 62


@dataclasses.dataclass(frozen=True, slots=True)
class TrackInput:
    """One track to read: frames with start_ns ≤ wall < the export's end, as MP4 `track_id`."""

    track_id: int
    token: str
    kind: TrackKind
    start_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """Frames from one cut to the next: per track (in input order), and all merged as the
    MP4 writer takes them, (track_id, sample)."""

    frames: tuple[list[StoredFrame], ...]
    samples: list[tuple[int, Sample]]
    #: The frame of samples[0].
    first: StoredFrame
    #: Sum of the frames' data sizes.
    size: int


class _Feed:
    """One track's frames in wall-clock order, buffered from the store a page ahead of use."""

    def __init__(self, store: Store, recording: str, track: TrackInput, end_ns: int) -> None:
        self.token = track.token
        self.frames: list[StoredFrame] = []
        self.walls: list[int] = []
        #: Index of the first frame not yet taken into a chunk.
        self.pos = 0
        self.done = False
        self._store = store
        self._recording = recording
        self._start_ns = track.start_ns
        self._end_ns = end_ns
        self._ahead: asyncio.Task[list[StoredFrame]] | None = None
        # A video track starts at a keyframe: frames before its first one are skipped.
        self._wait_for_key = track.kind is TrackKind.VIDEO

    def _read_after(self, after: FrameRef | None) -> asyncio.Task[list[StoredFrame]]:
        page = self._store.read_frame_page(
            self._recording,
            self.token,
            self._start_ns,
            self._end_ns,
            after=after,
            limit=READ_PAGE_FRAMES,
            max_bytes=READ_PAGE_BYTES,
        )
        return asyncio.ensure_future(page)

    async def more(self) -> bool:
        """Append the next page (and start reading the one after it); False at the end."""
        if self.done:
            return False
        task, self._ahead = self._ahead or self._read_after(None), None
        page = await task
        if not page:
            self.done = True
            return False
        self._ahead = self._read_after(page[-1].ref)
        if self._wait_for_key:
            first = next((i for i, f in enumerate(page) if f.ref.keyframe), None)
            if first is None:
                return True
            page = page[first:]
            self._wait_for_key = False
        self.frames += page
        self.walls += [f.ref.wall_ns for f in page]
        return True

    async def index_before(self, wall_ns: int) -> int:
        """Index of the first frame with wall ≥ `wall_ns` (reading until it is known)."""
        while (not self.walls or self.walls[-1] < wall_ns) and await self.more():
            pass
        return bisect.bisect_left(self.walls, wall_ns, self.pos)

    async def head_wall(self) -> int | None:
        """Wall clock of the next frame to take; None when the track is exhausted."""
        while self.pos >= len(self.frames):
            if not await self.more():
                return None
        return self.walls[self.pos]

    async def keyframe_from(self, index: int) -> int | None:
        """Index of the first keyframe at or after `index`; None if the track has no more."""
        scanned = 0
        while True:
            for k in range(index, len(self.frames)):
                if self.frames[k].ref.keyframe:
                    return k
                scanned += len(self.frames[k].data)
            if scanned > MAX_CHUNK_BYTES:
                raise LimitError(
                    f"{scanned} bytes without a keyframe of track {self.token}: "
                    f"more than MAX_CHUNK_BYTES={MAX_CHUNK_BYTES}"
                )
            index = len(self.frames)
            if not await self.more():
                return None

    def take(self, end: int) -> tuple[list[StoredFrame], list[int]]:
        """Frames (and their walls) from the current position to `end`, the new position."""
        taken = self.frames[self.pos : end], self.walls[self.pos : end]
        self.pos = end
        if self.pos > _COMPACT_AFTER:
            del self.frames[: self.pos], self.walls[: self.pos]
            self.pos = 0
        return taken

    async def close(self) -> None:
        task, self._ahead = self._ahead, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: a read-ahead nobody needs any more may fail quietly


async def read_chunks(
    store: Store, recording: str, tracks: Sequence[TrackInput], end_ns: int
) -> AsyncGenerator[Chunk, None]:
    """The chunks of `tracks` (index 0 is the primary track when it is video) until end_ns."""
    feeds = [_Feed(store, recording, t, end_ns) for t in tracks]
    ids = [t.track_id for t in tracks]
    cut = _cut_at_keyframe if tracks[0].kind is TrackKind.VIDEO else _cut_by_time
    try:
        while (ends := await cut(feeds)) is not None:
            yield _chunk([f.take(end) for f, end in zip(feeds, ends, strict=True)], ids)
    finally:
        for feed in feeds:
            await feed.close()


async def _cut_at_keyframe(feeds: list[_Feed]) -> list[int] | None:
    """End indexes of the next chunk: up to the primary's next keyframe (after the first)."""
    primary = feeds[0]
    key = await primary.keyframe_from(primary.pos)
    ends = await _ends_before(feeds, key)
    if all(end == f.pos for f, end in zip(feeds, ends, strict=True)):
        if key is None:
            return None
        ends = await _ends_before(feeds, await primary.keyframe_from(key + 1))
    return ends


async def _ends_before(feeds: list[_Feed], key: int | None) -> list[int]:
    """Cut before the primary's frame `key` (None: at the end), the others at its wall clock."""
    primary = feeds[0]
    if key is None:
        return [len(primary.frames)] + [await f.index_before(_FAR_FUTURE_NS) for f in feeds[1:]]
    wall = primary.walls[key]
    return [key] + [await f.index_before(wall) for f in feeds[1:]]


async def _cut_by_time(feeds: list[_Feed]) -> list[int] | None:
    heads = [wall for f in feeds if (wall := await f.head_wall()) is not None]
    if not heads:
        return None
    limit = min(heads) + CHUNK_NS
    return [await f.index_before(limit) for f in feeds]


def _chunk(taken: list[tuple[list[StoredFrame], list[int]]], ids: list[int]) -> Chunk:
    # (wall, track index, position) never ties, so sorting never compares frames; the
    # tracks are sorted runs already, which the sort merges in linear time.
    keyed = list(
        itertools.chain.from_iterable(
            zip(walls, itertools.repeat(i), itertools.count(), frames, strict=False)
            for i, (frames, walls) in enumerate(taken)
        )
    )
    if sum(1 for frames, _ in taken if frames) > 1:
        keyed.sort()
    samples = [
        (ids[i], Sample(f.data, wall, f.ref.keyframe, f.ref.run_id)) for wall, i, _, f in keyed
    ]
    size = sum(len(sample.data) for _, sample in samples)
    if size > MAX_CHUNK_BYTES:
        raise LimitError(
            f"a chunk of {size} bytes at {keyed[0][0]} ns: more than "
            f"MAX_CHUNK_BYTES={MAX_CHUNK_BYTES}"
        )
    return Chunk(tuple(frames for frames, _ in taken), samples, keyed[0][3], size)
