"""LiveHub: one source's frames fanned out to MediaSinks (the recorder) and live subscribers (RTSP).

The source pushes into the hub as into any MediaSink; every call returns at once, whatever the
consumers do. Two kinds of consumer, with the two drop policies of the architecture guide:

- **Sinks** (`add_sink`): called synchronously for every frame, never dropped from. They must
  not block (the recorder queues to its own writer). A sink added during a run gets `start` with
  the current tracks at once and frames from the next video keyframe on; a removed sink gets
  `stop(None)`. A sink that raises is logged with its traceback and detached, so it can break
  neither the source nor the other consumers.
- **Subscribers** (`subscribe`, the RTSP server's live sessions): a bounded queue each. A new
  subscriber starts at the next video keyframe. One whose queue is full has it cleared and
  resumes at the next video keyframe; every frame it missed that way is counted, per subscriber
  (`Subscription.dropped_frames`) and in total (`LiveHub.dropped_frames`).

`stop` (the end of the source's run) ends every subscription once its queued frames are read,
because the next run may bring other tracks; subscriptions made between runs wait for the next.
Without a video track every frame is a starting point.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Self

from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, CodecParams, TrackKind
from app.core.ports import MediaSink

logger = logging.getLogger(__name__)

#: Queue bounds a subscriber may ask for (frames); 256 is ~10 s of 25 fps video.
DEFAULT_MAX_QUEUE = 256
MAX_QUEUE_LIMIT = 65_536


class _Phase(enum.Enum):
    STARTING = "starting"  # waiting for the first keyframe: nothing lost yet
    FLOWING = "flowing"
    RESYNCING = "resyncing"  # fell behind: every frame until the next keyframe is lost


class Subscription:
    """One live subscriber: async-iterate for (track index, unit) until the run ends.

    `close()` (or leaving `async with`) unsubscribes; a subscription dropped without closing is
    forgotten by the hub once garbage-collected.
    """

    def __init__(self, hub: LiveHub, max_queue: int) -> None:
        self._hub = hub
        self._max_queue = max_queue
        # A deque plus an event rather than an asyncio.Queue: overflow clears it in one step and
        # the end of the run must not need a free slot for a sentinel.
        self._queue: collections.deque[tuple[int, AccessUnit]] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._phase = _Phase.STARTING
        #: Frames this subscriber lost because it fell behind.
        self.dropped_frames = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[int, AccessUnit]:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        """Unsubscribe; frames still queued are discarded and the iterator finishes."""
        self._queue.clear()
        self._end()
        self._hub._forget(self)

    async def aclose(self) -> None:
        """`close()` under the name async generators use, for consumers written against those."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    def _offer(self, track: int, unit: AccessUnit, starts: bool) -> int:
        """Queue one frame; returns how many frames this call made the subscriber lose."""
        if self._phase is not _Phase.FLOWING:
            if not starts:
                if self._phase is _Phase.STARTING:
                    return 0
                self.dropped_frames += 1
                return 1
            self._phase = _Phase.FLOWING
        lost = 0
        if len(self._queue) >= self._max_queue:
            lost = len(self._queue)
            self._queue.clear()
            if not starts:
                # This frame is lost too, and so is everything up to the next keyframe.
                self._phase = _Phase.RESYNCING
                self.dropped_frames += lost + 1
                return lost + 1
        self._queue.append((track, unit))
        self._ready.set()
        self.dropped_frames += lost
        return lost


@dataclasses.dataclass(slots=True, eq=False)
class _SinkEntry:
    sink: MediaSink
    #: Joined mid-run: holds back frames until the next video keyframe.
    waiting_for_keyframe: bool


class LiveHub:
    """Fan-out point of one live source: a MediaSink to the source, a LiveSource to the server."""

    def __init__(self, name: str = "live") -> None:
        self.name = name
        self._tracks: list[CodecParams] = []
        self._running = False
        self._video_track: int | None = None
        # By identity, in the order added (sinks need not be hashable).
        self._sinks: list[_SinkEntry] = []
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        #: Frames lost by all subscribers together since the hub was made.
        self.dropped_frames = 0
        #: Frames received from the source since the hub was made.
        self.frames = 0

    # ------------------------------------------------------------------ LiveSource

    def tracks(self) -> Sequence[CodecParams]:
        """The tracks of the current run (latest parameters); empty while the source is idle."""
        return tuple(self._tracks)

    def subscribe(self, max_queue: int = DEFAULT_MAX_QUEUE) -> Subscription:
        """Frames from the next video keyframe on, until the run ends or `close()`."""
        if not 1 <= max_queue <= MAX_QUEUE_LIMIT:
            raise ConfigError(
                f"subscriber queue of {max_queue} frames is outside 1 … {MAX_QUEUE_LIMIT}"
            )
        subscription = Subscription(self, max_queue)
        self._subscriptions.add(subscription)
        return subscription

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    # ------------------------------------------------------------------ sinks

    def add_sink(self, sink: MediaSink) -> None:
        """Fan out to `sink` too; joining mid-run it gets `start` now and frames from a keyframe."""
        if self._entry(sink) is not None:
            raise ConflictError(f"{sink!r} is already a sink of live hub {self.name!r}")
        entry = _SinkEntry(sink, self._running and self._video_track is not None)
        self._sinks.append(entry)
        if self._running and not self._call(sink, sink.start, self.tracks()):
            self._sinks.remove(entry)

    def remove_sink(self, sink: MediaSink) -> None:
        """Stop fanning out to `sink`; during a run it gets `stop(None)`."""
        entry = self._entry(sink)
        if entry is None:
            raise ConflictError(f"{sink!r} is not a sink of live hub {self.name!r}")
        self._sinks.remove(entry)
        if self._running:
            self._call(sink, sink.stop, None)

    # ------------------------------------------------------------------ MediaSink

    def start(self, tracks: Sequence[CodecParams]) -> None:
        if self._running:
            # A source that restarts without stopping: close the old run for everyone first.
            logger.warning("live hub %s: new run without the end of the previous one", self.name)
            self.stop("source restarted")
        self._tracks = list(tracks)
        self._video_track = next(
            (i for i, t in enumerate(tracks) if t.kind is TrackKind.VIDEO), None
        )
        self._running = True
        for entry in list(self._sinks):
            entry.waiting_for_keyframe = False
            if not self._call(entry.sink, entry.sink.start, tracks):
                self._sinks.remove(entry)

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        if not self._running:
            raise ConflictError(f"live hub {self.name!r}: frame outside a run (start not called)")
        if not 0 <= track < len(self._tracks):
            raise ConflictError(
                f"live hub {self.name!r}: track {track} is not one of the run's "
                f"{len(self._tracks)} tracks"
            )
        self.frames += 1
        if params is not self._tracks[track]:
            self._tracks[track] = params
        starts = self._video_track is None or (track == self._video_track and unit.keyframe)
        for entry in list(self._sinks):
            if entry.waiting_for_keyframe:
                if not starts:
                    continue
                entry.waiting_for_keyframe = False
            if not self._call(entry.sink, entry.sink.frame, track, unit, params):
                self._sinks.remove(entry)
        for subscription in list(self._subscriptions):
            self.dropped_frames += subscription._offer(track, unit, starts)

    def stop(self, reason: str | None) -> None:
        if not self._running:
            return
        self._running = False
        self._tracks = []
        self._video_track = None
        for entry in list(self._sinks):
            self._call(entry.sink, entry.sink.stop, reason)
        for subscription in list(self._subscriptions):
            subscription._end()
        self._subscriptions = weakref.WeakSet()

    # ------------------------------------------------------------------ internals

    def _entry(self, sink: MediaSink) -> _SinkEntry | None:
        return next((e for e in self._sinks if e.sink is sink), None)

    def _forget(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def _call(self, sink: MediaSink, method: Callable[..., None], *args: object) -> bool:
        """Call one sink method; False (and a logged traceback) if the sink raised."""
        try:
            method(*args)
        except Exception:
            logger.exception(
                "live hub %s: sink %r raised in %s(); detached from the hub",
                self.name,
                sink,
                method.__name__,
            )
            return False
        return True
