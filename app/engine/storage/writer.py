"""TrackWriter: the loop thread's handle for recording one track; it buffers, never blocks.

Frames are queued in memory and handed to the store's flusher (flush.py) on its write thread.
The buffer is bounded: when a writer holds more than `writer_buffer_limit_bytes` that is not yet
durable, the current run ends and whole GOPs are dropped until the buffer is half empty and a
keyframe arrives, which starts a new run. The loss is counted in `stats`, logged, and visible
in the index as a gap between two runs — recording never blocks the loop and never invents
or splices frames.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

from app.core.errors import ConfigError, ConflictError
from app.core.media import AccessUnit, CodecParams, TrackKind
from app.engine.storage.flush import EndRunOp, FlushOutcome, FrameOp, Op
from app.engine.storage.model import StoreOptions, WriterStats

log = logging.getLogger(__name__)

OVERLOAD_REASON = "storage overload: the disk could not keep up, frames were dropped"
#: Times are stored as SQLite INTEGERs (signed 64-bit); wall_ns reaches this in year 2262.
_INT64 = range(-(1 << 63), 1 << 63)


class TrackWriter:
    """Appends the access units of one (recording, track); open it with `Store.open_writer`.

    Every method runs on the loop thread. `append` and `end_run` return at once; `close`
    waits until everything appended is durable.
    """

    def __init__(
        self,
        *,
        key: int,
        recording: str,
        track: str,
        kind: TrackKind,
        options: StoreOptions,
        wake: Callable[[], None],
        flush: Callable[[], Awaitable[None]],
        release: Callable[[TrackWriter], Awaitable[None]],
    ) -> None:
        self.key = key
        self.recording = recording
        self.track = track
        self.kind = kind
        self._options = options
        self._wake = wake
        self._flush = flush
        self._release = release
        self._ops: list[Op] = []
        self._pending_bytes = 0
        self._inflight_bytes = 0
        self._last_wall_ns: int | None = None
        self._dropping = False
        self._episode = [0, 0]  # frames, bytes dropped in the current overload episode
        self._closed = False
        self._stats = WriterStats()

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered_bytes(self) -> int:
        """Bytes appended but not yet durable."""
        return self._pending_bytes + self._inflight_bytes

    def append(self, unit: AccessUnit, params: CodecParams) -> None:
        """Queue one access unit; a run starts with the first frame after open or `end_run`.

        A video run starts at a keyframe (earlier frames are counted as skipped). A wall clock
        that steps backwards ends the run, so that wall time never decreases within a run.
        """
        if self._closed:
            raise ConflictError(f"the writer of {self.recording}/{self.track} is closed")
        if params.kind is not self.kind:
            raise ConfigError(
                f"{params.codec.value} data cannot go into {self.kind.value} track "
                f"{self.recording}/{self.track}"
            )
        if unit.wall_ns not in _INT64 or unit.media_ts not in _INT64:
            raise ConfigError(
                f"{self.recording}/{self.track}: times out of the 64-bit range "
                f"(wall_ns={unit.wall_ns}, media_ts={unit.media_ts})"
            )
        size = len(unit.data)
        if not self._admit(unit, size):
            return
        if self._last_wall_ns is not None and unit.wall_ns < self._last_wall_ns:
            step_ms = (self._last_wall_ns - unit.wall_ns) / 1e6
            self._ops.append(EndRunOp(f"wall clock stepped back by {step_ms:.3f} ms"))
        self._last_wall_ns = unit.wall_ns
        self._ops.append(FrameOp(unit, params))
        self._pending_bytes += size
        if self._pending_bytes >= self._options.flush_early_bytes:
            self._wake()

    def _admit(self, unit: AccessUnit, size: int) -> bool:
        """Apply the overload policy (module doc); False when the frame is dropped."""
        limit = self._options.writer_buffer_limit_bytes
        buffered = self.buffered_bytes
        if self._dropping:
            sync_point = unit.keyframe or self.kind is not TrackKind.VIDEO
            if sync_point and buffered <= limit // 2 and buffered + size <= limit:
                self._dropping = False
                log.warning(
                    "%s/%s: recording resumes after dropping %d frames (%d bytes)",
                    self.recording,
                    self.track,
                    *self._episode,
                )
                self._episode = [0, 0]
                return True
        elif buffered + size > limit:
            self._dropping = True
            self.end_run(OVERLOAD_REASON)
            log.warning(
                "%s/%s: %d bytes not yet durable exceed the %d-byte buffer; dropping frames "
                "until the next keyframe",
                self.recording,
                self.track,
                buffered,
                limit,
            )
        else:
            return True
        self._stats.frames_dropped += 1
        self._stats.bytes_dropped += size
        self._episode[0] += 1
        self._episode[1] += size
        return False

    def end_run(self, reason: str | None = None) -> None:
        """The source stopped (None: orderly); the next append starts a new run after a gap."""
        if self._closed:
            return
        self._ops.append(EndRunOp(reason))
        self._last_wall_ns = None

    async def close(self) -> None:
        """End the run, wait until every appended frame is durable, release the track."""
        if self._closed:
            return
        self.end_run(None)
        self._closed = True
        try:
            await self._flush()
        finally:
            await self._release(self)

    # ---------------------------------------------------------------- the store's side

    def take(self) -> tuple[list[Op], int]:
        """Hand the queued operations to a flush cycle (loop thread)."""
        ops, nbytes = self._ops, self._pending_bytes
        self._ops, self._pending_bytes = [], 0
        self._inflight_bytes += nbytes
        return ops, nbytes

    def settle(self, outcome: FlushOutcome, nbytes: int) -> None:
        """Account for a finished flush cycle of `nbytes` taken earlier (loop thread)."""
        self._inflight_bytes -= nbytes
        stats = self._stats
        stats.frames_written += outcome.frames_written
        stats.bytes_written += outcome.bytes_written
        stats.runs_started += outcome.runs_started
        stats.frames_skipped += outcome.frames_skipped
        stats.frames_failed += outcome.frames_failed
        if outcome.error is not None:
            stats.last_error = outcome.error
        if outcome.run_broken:
            self._last_wall_ns = None
