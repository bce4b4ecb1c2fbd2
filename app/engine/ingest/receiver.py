"""The supervised ingest loop of one camera: connect, stream into a MediaSink, back off, retry.

    receiver = Receiver("rtsp://user:pw@cam/stream", sink, clock=SystemClock())
    async with receiver:          # or: task = asyncio.create_task(receiver.run()) … stop()
        ...

Each connected run calls `sink.start(tracks)`, then `sink.frame(...)` per access unit, then
`sink.stop(reason)`. Between runs the receiver waits 1, 2, 4, 8 … seconds (capped; back to the
start after a run that streamed for `healthy_after_s`). Its state (CONNECTING, STREAMING,
FAILED with the reason, STOPPED) is observable through `status` and an `on_state` callback.
The camera's password never reaches a log line, an error message or the status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

from app.core.errors import ConfigError, ConflictError, CustosError
from app.core.media import AccessUnit, CodecParams
from app.core.ports import MediaSink
from app.core.time import NS_PER_SECOND, Clock
from app.engine.ingest.reorder import DEFAULT_REORDER_WINDOW
from app.engine.ingest.session import CameraSession, SessionOptions, Transport
from app.engine.ingest.url import parse_source_url

#: Bounds on the tunables, so a configuration typo cannot make a receiver spin or sleep forever.
MIN_BACKOFF_S = 0.01
MAX_BACKOFF_CAP_S = 600.0
MIN_DEAD_AFTER_S = 0.1
MAX_DEAD_AFTER_S = 600.0

log = logging.getLogger("app.engine.ingest")
_T = TypeVar("_T")


class ReceiverState(enum.Enum):
    """Where a receiver is; `onvif` gives the tt:ReceiverState the Receiver service reports."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def onvif(self) -> str:
        if self is ReceiverState.CONNECTING:
            return "Connecting"
        if self is ReceiverState.STREAMING:
            return "Connected"
        return "NotConnected"


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverStatus:
    """One state of a receiver, as reported to listeners."""

    state: ReceiverState
    #: FAILED: why the last run ended, or why connecting failed (no credentials in it).
    reason: str | None = None
    #: Connection attempts so far, this one included.
    attempt: int = 0
    #: FAILED: seconds until the next attempt.
    retry_in_s: float | None = None
    #: UTC wall clock of the transition, ns.
    since_ns: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverStats:
    """Totals over every run of a receiver."""

    attempts: int = 0
    #: Runs that delivered at least one access unit.
    runs: int = 0
    frames: int = 0
    packets: int = 0
    errors: int = 0
    lost_units: int = 0
    skipped: int = 0


StateListener = Callable[[ReceiverStatus], None]


def backoff_delay(failures: int, initial_s: float, cap_s: float) -> float:
    """Delay before the next attempt after `failures` consecutive failures (1 → initial)."""
    return float(min(cap_s, initial_s * 2 ** min(max(failures - 1, 0), 32)))


class _StopRequested(Exception):
    pass


class Receiver:
    """Pulls one camera over RTSP into a MediaSink, reconnecting until stopped."""

    def __init__(
        self,
        uri: str,
        sink: MediaSink,
        *,
        transport: Transport = "tcp",
        clock: Clock,
        backoff_cap_s: float = 8.0,
        backoff_initial_s: float = 1.0,
        healthy_after_s: float = 10.0,
        dead_after_s: float = 10.0,
        request_timeout_s: float = 10.0,
        reorder_window: int = DEFAULT_REORDER_WINDOW,
        on_state: StateListener | None = None,
        name: str | None = None,
    ) -> None:
        self._source = parse_source_url(uri)
        if transport not in ("tcp", "udp"):
            raise ConfigError(f"transport must be 'tcp' or 'udp', got {transport!r}")
        if not MIN_BACKOFF_S <= backoff_initial_s <= backoff_cap_s <= MAX_BACKOFF_CAP_S:
            raise ConfigError(
                f"backoff must satisfy {MIN_BACKOFF_S} <= initial ({backoff_initial_s})"
                f" <= cap ({backoff_cap_s}) <= {MAX_BACKOFF_CAP_S}"
            )
        if not MIN_DEAD_AFTER_S <= dead_after_s <= MAX_DEAD_AFTER_S:
            raise ConfigError(
                f"dead_after_s {dead_after_s} is outside {MIN_DEAD_AFTER_S}…{MAX_DEAD_AFTER_S}"
            )
        self.name = name or self._source.redacted
        self._sink = sink
        self._clock = clock
        self._options = SessionOptions(
            transport=transport,
            request_timeout_s=request_timeout_s,
            dead_after_s=dead_after_s,
            reorder_window=reorder_window,
        )
        self._backoff = (backoff_initial_s, backoff_cap_s)
        self._healthy_ns = int(healthy_after_s * NS_PER_SECOND)
        self._listeners: list[StateListener] = [on_state] if on_state is not None else []
        self._status = ReceiverStatus(ReceiverState.STOPPED, since_ns=clock.wall_ns())
        self._stop = asyncio.Event()
        self._finished = asyncio.Event()
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._session: CameraSession | None = None
        self._totals = ReceiverStats()
        self._streaming_since: int | None = None

    # ------------------------------------------------------------------ observation

    @property
    def state(self) -> ReceiverState:
        return self._status.state

    @property
    def status(self) -> ReceiverStatus:
        return self._status

    @property
    def stats(self) -> ReceiverStats:
        """Totals so far, the current run included."""
        return self._add_run(self._totals, self._session)

    def add_listener(self, listener: StateListener) -> None:
        """Call `listener` (on the loop, must not block) at every state change."""
        self._listeners.append(listener)

    def _set(
        self, state: ReceiverState, reason: str | None = None, retry: float | None = None
    ) -> None:
        self._status = ReceiverStatus(
            state, reason, self._totals.attempts, retry, since_ns=self._clock.wall_ns()
        )
        for listener in self._listeners:
            try:
                listener(self._status)
            except Exception:
                log.exception("%s: state listener failed", self.name)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Run the supervised loop in a task of the running loop; `stop` ends it."""
        if self._running or (self._task is not None and not self._task.done()):
            raise ConflictError(f"receiver {self.name} is already running")
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"ingest {self.name}")

    async def stop(self) -> None:
        """End the loop: the current run is torn down and the sink told; returns when done."""
        if not self._running and self._task is None:
            return  # nothing to stop; a later start must not find a stale stop request
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        elif self._running:
            await self._finished.wait()

    async def __aenter__(self) -> Receiver:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Connect, stream, and on any error back off and retry, until `stop` is called."""
        if self._running:
            raise ConflictError(f"receiver {self.name} is already running")
        self._running = True
        self._finished.clear()
        failures = 0
        try:
            while not self._stop.is_set():
                self._totals = dataclasses.replace(self._totals, attempts=self._totals.attempts + 1)
                self._set(ReceiverState.CONNECTING)
                error, healthy = await self._run_once()
                if self._stop.is_set():
                    break
                failures = 1 if healthy else failures + 1
                delay = backoff_delay(failures, *self._backoff)
                reason = error.message if isinstance(error, CustosError) else _describe(error)
                if isinstance(error, CustosError) or error is None:
                    log.warning("%s: %s; retrying in %g s", self.name, reason, delay)
                else:
                    log.error(
                        "%s: unexpected failure; retrying in %g s", self.name, delay, exc_info=error
                    )
                self._set(ReceiverState.FAILED, reason, delay)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self._running = False
            self._stop.clear()
            self._finished.set()
            self._set(ReceiverState.STOPPED)

    async def _run_once(self) -> tuple[BaseException | None, bool]:
        """One connected run; returns what ended it (None when stopped) and whether healthy."""
        session = CameraSession(
            self._source, self._options, clock=self._clock, on_frame=self._deliver
        )
        self._session = session
        self._streaming_since = None
        started = False
        error: BaseException | None = None
        try:
            tracks = await self._unless_stopped(session.open())
            log.info(
                "%s: playing %s over %s", self.name, tracks_summary(tracks), self._options.transport
            )
            self._sink.start(tracks)
            started = True
            session.start_streaming()
            await self._unless_stopped(session.ended)
        except _StopRequested:
            pass
        except Exception as exc:  # noqa: BLE001 - reported by run(); a bug keeps its traceback
            error = exc
        finally:
            await session.close()
            self._totals = self._add_run(self._totals, session)
            self._session = None
            if started:
                self._sink.stop(_describe(error) if error is not None else None)
        return error, self._was_healthy()

    def _was_healthy(self) -> bool:
        since = self._streaming_since
        return since is not None and self._clock.monotonic_ns() - since >= self._healthy_ns

    async def _unless_stopped(self, awaitable: Awaitable[_T]) -> _T:
        work = asyncio.ensure_future(awaitable)
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            raise _StopRequested
        return work.result()

    def _deliver(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        if self._streaming_since is None:
            self._streaming_since = self._clock.monotonic_ns()
            self._totals = dataclasses.replace(self._totals, runs=self._totals.runs + 1)
            self._set(ReceiverState.STREAMING)
        self._sink.frame(track, unit, params)

    @staticmethod
    def _add_run(totals: ReceiverStats, session: CameraSession | None) -> ReceiverStats:
        if session is None:
            return totals
        tracks = [t.stats for t in session.tracks]
        return dataclasses.replace(
            totals,
            frames=totals.frames + sum(s.frames for s in tracks),
            packets=totals.packets + sum(s.packets for s in tracks),
            errors=totals.errors + sum(s.errors for s in tracks),
            lost_units=totals.lost_units + sum(s.lost_units for s in tracks),
            skipped=totals.skipped + sum(s.skipped for s in tracks),
        )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "stopped"
    if isinstance(error, CustosError):
        return error.message
    return f"internal error: {type(error).__name__}: {error}"


def tracks_summary(tracks: Sequence[CodecParams]) -> str:
    """'H264 320x240, MPEG4-GENERIC 16000 Hz' for logs."""
    parts = []
    for params in tracks:
        if params.width:
            parts.append(f"{params.codec.value} {params.width}x{params.height}")
        elif params.sample_rate:
            parts.append(f"{params.codec.value} {params.sample_rate} Hz")
        else:
            parts.append(params.codec.value)
    return ", ".join(parts)
