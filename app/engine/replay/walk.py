"""Which stored frames a replay PLAY sends, in which order and with which flags (PB-18..33).

Forward: the set-up tracks merged in wall-clock order from the primary track's clean point, with
one unit of look-ahead per track so E (last unit before a gap) and T (last unit of the play)
are known when a unit is sent; an open range that reaches the live edge of a recording that is
still being written keeps polling the store. Reverse: the primary track only, GOP by GOP from
the last to the first, the frames of each GOP in forward order.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from app.core.errors import ProtocolError
from app.core.media import Codec, TrackKind
from app.engine.replay.extension import UnitMarks
from app.engine.storage import FrameRef, Store, StoredFrame
from app.formats.h26x import h264_nal_type, h265_nal_type, split_length_prefixed
from app.protocols.rtsp.headers import FramesMode

#: Frames read from the store per query of one track.
PAGE_FRAMES = 32
#: Largest GOP held in memory in reverse replay; longer GOPs are cut (and logged by the caller).
MAX_GOP_FRAMES = 1024
#: Exclusive upper bound of an open range.
END_OF_TIME_NS = 1 << 62

# H.265 VCL NAL types 0..14: the even ones are sub-layer non-reference pictures.
_H265_LAST_VCL = 14


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayTrack:
    """A set-up track: its index in the resource description, token, kind and codec."""

    index: int
    token: str
    kind: TrackKind
    codec: Codec
    clock_rate: int


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One unit to send, its flags, and the wall time its send is paced by."""

    track: ReplayTrack
    frame: StoredFrame
    marks: UnitMarks
    #: Rate control sends the unit when playback reaches this wall time (a reverse GOP goes
    #: out when its newest frame is due).
    pace_ns: int
    #: The unit follows a recording gap: pacing restarts instead of sleeping through it.
    after_gap: bool


def disposable(codec: Codec, data: bytes) -> bool:
    """A picture no other picture references (B-frames usually): dropped by Frames: predicted."""
    try:
        nals = split_length_prefixed(data)
    except ProtocolError:
        return False
    for nal in nals:
        if codec is Codec.H264:
            kind = h264_nal_type(nal)
            if 1 <= kind <= 5:
                return nal[0] & 0x60 == 0
        elif codec is Codec.H265:
            kind = h265_nal_type(nal)
            if kind <= _H265_LAST_VCL:
                return kind % 2 == 0
    return False


class FrameFilter:
    """The Frames header applied to one track (video only; other tracks pass everything)."""

    def __init__(self, track: ReplayTrack, mode: FramesMode, interval_ns: int) -> None:
        video = track.kind is TrackKind.VIDEO
        self._codec = track.codec
        self._mode = mode if video else FramesMode.ALL
        self._interval_ns = interval_ns if video else 0
        self._last_ns: int | None = None

    @property
    def intra(self) -> bool:
        return self._mode is FramesMode.INTRA

    def wants(self, frame: StoredFrame) -> bool:
        ref = frame.ref
        if self._mode is FramesMode.PREDICTED:
            return ref.keyframe or not disposable(self._codec, frame.data)
        if self._mode is FramesMode.INTRA:
            if not ref.keyframe:
                return False
            last = self._last_ns
            return last is None or abs(ref.wall_ns - last) >= self._interval_ns
        return True

    def accepted(self, frame: StoredFrame) -> None:
        self._last_ns = frame.ref.wall_ns


class TrackCursor:
    """Pages through one track forward from a wall time, filtered; `rearm` after new data."""

    def __init__(
        self,
        store: Store,
        recording: str,
        track: ReplayTrack,
        start_ns: int,
        end_ns: int | None,
        frames: FrameFilter,
    ) -> None:
        self.track = track
        self._store = store
        self._recording = recording
        self._start_ns = start_ns
        self._end_excl = END_OF_TIME_NS if end_ns is None else end_ns + 1
        self._filter = frames
        self._buffer: collections.deque[StoredFrame] = collections.deque()
        self._after: tuple[int, int] | None = None
        self._exhausted = False

    async def peek(self) -> StoredFrame | None:
        while True:
            while self._buffer:
                if self._filter.wants(self._buffer[0]):
                    return self._buffer[0]
                self._buffer.popleft()
            if self._exhausted:
                return None
            await self._fetch()

    def pop(self) -> StoredFrame:
        frame = self._buffer.popleft()
        self._filter.accepted(frame)
        return frame

    def rearm(self) -> None:
        """Look again past the last frame read (the recording has grown)."""
        self._exhausted = False

    async def _fetch(self) -> None:
        start = self._start_ns if self._after is None else self._after[0]
        page = await read_after(
            self._store,
            self._recording,
            self.track.token,
            start,
            self._end_excl,
            after=self._after,
            limit=PAGE_FRAMES,
        )
        if page:
            self._after = (page[-1].ref.wall_ns, page[-1].ref.id)
            self._buffer.extend(page)
        if len(page) < PAGE_FRAMES:
            self._exhausted = True


async def read_after(
    store: Store,
    recording: str,
    track: str,
    start_ns: int,
    end_excl: int,
    *,
    after: tuple[int, int] | None,
    limit: int,
) -> list[StoredFrame]:
    """Up to `limit` frames in [start_ns, end_excl) whose (wall_ns, id) key follows `after`."""
    page: list[StoredFrame] = []
    reads = store.read_frames(recording, track, start_ns, end_excl, page=min(limit, PAGE_FRAMES))
    async with closing(reads) as frames:
        async for frame in frames:
            if after is not None and (frame.ref.wall_ns, frame.ref.id) <= after:
                continue
            page.append(frame)
            if len(page) >= limit:
                break
    return page


_Item = TypeVar("_Item")


@contextlib.asynccontextmanager
async def closing(reads: AsyncIterator[_Item]) -> AsyncIterator[AsyncIterator[_Item]]:
    """`reads`, closed on exit: a store read ends now, not whenever its generator is collected."""
    try:
        yield reads
    finally:
        aclose = getattr(reads, "aclose", None)  # test doubles may hand out plain iterators
        if aclose is not None:
            await aclose()


async def walk_forward(
    cursors: list[TrackCursor],
    *,
    live: Callable[[], Awaitable[bool]] | None,
    wait_for_data: Callable[[], Awaitable[None]],
) -> AsyncIterator[Delivery]:
    """Merge the cursors in wall-clock order; `live` says the footage may still grow."""
    last_run: dict[int, int] = {}
    while True:
        heads = await _heads(cursors)
        if not heads:
            if live is None:
                return
            if await live():
                await wait_for_data()
                for cursor in cursors:
                    cursor.rearm()
                continue
            # A cursor found its end when it read its last page, which may be long ago (rate
            # control reads ahead): frames stored since then are still due. One last look.
            for cursor in cursors:
                cursor.rearm()
            heads = await _heads(cursors)
            if not heads:
                return
        _, _, cursor = min(heads, key=lambda h: (h[0], h[1]))
        frame = cursor.pop()
        following, growing = await _following(cursor, live, wait_for_data)
        index = cursor.track.index
        run = frame.ref.run_id
        after_gap = index in last_run and last_run[index] != run
        terminal = following is None and not growing
        marks = UnitMarks(
            clean=frame.ref.keyframe,
            end=terminal or (following is not None and following.ref.run_id != run),
            discontinuity=index not in last_run or after_gap,
            terminal=terminal,
        )
        last_run[index] = run
        yield Delivery(cursor.track, frame, marks, frame.ref.wall_ns, after_gap)


async def _heads(cursors: list[TrackCursor]) -> list[tuple[int, int, TrackCursor]]:
    heads: list[tuple[int, int, TrackCursor]] = []
    for cursor in cursors:
        head = await cursor.peek()
        if head is not None:
            heads.append((head.ref.wall_ns, cursor.track.index, cursor))
    return heads


async def _following(
    cursor: TrackCursor,
    live: Callable[[], Awaitable[bool]] | None,
    wait_for_data: Callable[[], Awaitable[None]],
) -> tuple[StoredFrame | None, bool]:
    """The unit after the one just popped, and whether more may come when there is none yet."""
    following = await cursor.peek()
    if following is not None or live is None:
        return following, False
    if await live():
        # PB-35: no E while the recording grows. Hold the unit back for one poll so the
        # last unit of a recording that stops right now still gets E and T.
        await wait_for_data()
        cursor.rearm()
        following = await cursor.peek()
        if following is not None or await live():
            return following, True
    # The cursor's end may be stale (see walk_forward); the footage no longer grows.
    cursor.rearm()
    return await cursor.peek(), False


async def walk_reverse(
    store: Store,
    recording: str,
    track: ReplayTrack,
    key: FrameRef,
    *,
    start_ns: int,
    end_ns: int | None,
    frames: FrameFilter,
    interval_ns: int,
) -> AsyncIterator[Delivery]:
    """GOPs from the one of `key` (cut at `start_ns`) back to the one holding `end_ns`."""
    upper_excl = start_ns + 1
    after_gap = False
    current: FrameRef | None = key
    while current is not None:
        gop = await _read_gop(store, recording, track, current, upper_excl, frames)
        last_gop = end_ns is not None and current.wall_ns <= end_ns
        step = max(1, interval_ns) if frames.intra else 1
        previous = await store.keyframe_at_or_before(recording, track.token, current.wall_ns - step)
        gap_before = previous is not None and previous.run_id != current.run_id
        # E: the GOP that follows a gap (or the beginning of the footage) ends a section.
        section_end = gap_before or previous is None
        terminal = previous is None or last_gop
        for i, frame in enumerate(gop):
            last = i == len(gop) - 1
            marks = UnitMarks(
                clean=frame.ref.keyframe,
                end=section_end and last,
                discontinuity=i == 0,
                terminal=terminal and last,
            )
            yield Delivery(track, frame, marks, gop[-1].ref.wall_ns, after_gap and i == 0)
        after_gap = gap_before
        upper_excl = current.wall_ns
        current = None if last_gop else previous


async def _read_gop(
    store: Store,
    recording: str,
    track: ReplayTrack,
    key: FrameRef,
    upper_excl: int,
    frames: FrameFilter,
) -> list[StoredFrame]:
    if frames.intra:
        first = StoredFrame(key, await store.read_frame(key))
        frames.accepted(first)
        return [first]
    frames_read = await read_after(
        store,
        recording,
        track.token,
        key.wall_ns,
        upper_excl,
        after=(key.wall_ns, key.id - 1),
        limit=MAX_GOP_FRAMES,
    )
    return [f for f in frames_read if frames.wants(f)]
