"""Test doubles for ingest: a MediaSink that records everything and a receiver-state log, both
awaitable on a condition (tests wait on what they expect, never on a fixed sleep)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence

from app.core.media import AccessUnit, CodecParams
from app.engine.ingest import ReceiverState, ReceiverStatus


class Waiters:
    """Futures resolved when their predicate becomes true; `check` after every change."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def check(self) -> None:
        for predicate, future in list(self._waiting):
            if not future.done() and predicate():
                future.set_result(None)

    async def wait(self, predicate: Callable[[], bool], limit_s: float) -> None:
        if predicate():
            return
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(limit_s):
                await future
        finally:
            self._waiting.remove(entry)


@dataclasses.dataclass
class Run:
    tracks: list[CodecParams]
    frames: list[tuple[int, AccessUnit, CodecParams]] = dataclasses.field(default_factory=list)
    #: System wall clock when each frame reached the sink, ns.
    received_ns: list[int] = dataclasses.field(default_factory=list)
    stop_reason: str | None = None
    stopped: bool = False


class RecordingSink:
    """A MediaSink keeping every run with its frames; checks the start/frame/stop protocol."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.events: list[str] = []
        self.waiters = Waiters()

    def start(self, tracks: Sequence[CodecParams]) -> None:
        assert not self.runs or self.runs[-1].stopped, "start while a run is open"
        self.runs.append(Run(list(tracks)))
        self.events.append("start")
        self.waiters.check()

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        assert self.runs and not self.runs[-1].stopped, "frame outside a run"
        assert 0 <= track < len(self.runs[-1].tracks)
        self.runs[-1].frames.append((track, unit, params))
        self.runs[-1].received_ns.append(time.time_ns())
        self.waiters.check()

    def stop(self, reason: str | None) -> None:
        assert self.runs and not self.runs[-1].stopped, "stop without start"
        self.runs[-1].stopped = True
        self.runs[-1].stop_reason = reason
        self.events.append("stop")
        self.waiters.check()

    def frames(self, track: int | None = None, run: int = -1) -> list[AccessUnit]:
        if not self.runs:
            return []
        return [u for t, u, _ in self.runs[run].frames if track is None or t == track]

    async def wait(self, predicate: Callable[[], bool], limit_s: float = 15.0) -> None:
        await self.waiters.wait(predicate, limit_s)


class StateLog:
    """Every ReceiverStatus a receiver reported, in order."""

    def __init__(self) -> None:
        self.statuses: list[ReceiverStatus] = []
        self.waiters = Waiters()

    def __call__(self, status: ReceiverStatus) -> None:
        self.statuses.append(status)
        self.waiters.check()

    @property
    def states(self) -> list[ReceiverState]:
        return [s.state for s in self.statuses]

    def failures(self) -> list[ReceiverStatus]:
        return [s for s in self.statuses if s.state is ReceiverState.FAILED]

    async def wait(self, predicate: Callable[[], bool], limit_s: float = 15.0) -> None:
        await self.waiters.wait(predicate, limit_s)

    async def wait_failures(self, count: int, limit_s: float = 15.0) -> list[ReceiverStatus]:
        await self.wait(lambda: len(self.failures()) >= count, limit_s)
        return self.failures()
