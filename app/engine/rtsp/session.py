"""RTSP sessions: tracks set up, the producer task they own, PLAY/PAUSE state and keepalive."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from app.core.time import NS_PER_SECOND, Clock
from app.engine.rtsp.output import SessionOutput, TrackSender
from app.engine.rtsp.resource import (
    PlayRequest,
    PlayResult,
    Resource,
    ResourceDescription,
    StreamProducer,
)

if TYPE_CHECKING:
    from app.engine.rtsp.connection import RtspConnection

logger = logging.getLogger(__name__)


class SessionState(enum.Enum):
    READY = "ready"
    PLAYING = "playing"
    CLOSED = "closed"


class RtspSession:
    """One client session on one mount; owns its producer, its senders and their channels."""

    def __init__(
        self,
        session_id: str,
        *,
        mount: str,
        resource: Resource,
        description: ResourceDescription,
        producer: StreamProducer,
        output: SessionOutput,
        owner: str | None,
        timeout_s: int,
        clock: Clock,
        origin: RtspConnection,
    ) -> None:
        self.id = session_id
        self.mount = mount
        self.resource = resource
        self.description = description
        self.producer = producer
        self.output = output
        self.owner = owner
        self.timeout_s = timeout_s
        #: The connection whose SETUP created the session.
        self.origin = origin
        #: The connection carrying this session's interleaved tracks, if any.
        self.interleaved_connection: RtspConnection | None = None
        self.state = SessionState.READY
        self._clock = clock
        self.last_activity_ns = clock.monotonic_ns()
        self._run_task: asyncio.Task[None] | None = None
        self._played = False

    @property
    def senders(self) -> dict[int, TrackSender]:
        return self.output.senders

    def touch(self) -> None:
        """Keepalive: any request naming the session (but TEARDOWN), or an RTCP packet."""
        self.last_activity_ns = self._clock.monotonic_ns()

    def deadline_ns(self) -> int:
        return self.last_activity_ns + self.timeout_s * NS_PER_SECOND

    def blocked(self) -> bool:
        """The client is not reading its interleaved data: it is alive, just slow (PB-38)."""
        connection = self.interleaved_connection
        return connection is not None and not connection.closed and connection.write_paused

    async def play(self, request: PlayRequest) -> PlayResult:
        """Stop a running delivery (go-to-time, Immediate) and let the producer position."""
        await self._stop_run()
        self.output.clear()
        if self.state is SessionState.PLAYING:
            self.state = SessionState.READY
        return await self.producer.play(request, self.output)

    def start_run(self) -> None:
        """Begin delivery; call after the PLAY response was written (PB-17)."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.PLAYING
        self._played = True
        self.output.reporting = True
        self.output.start()
        self._run_task = asyncio.get_running_loop().create_task(
            self._run(), name=f"rtsp-session-{self.id}"
        )

    async def pause(self) -> None:
        if self.state is not SessionState.PLAYING:
            return
        await self._stop_run()
        self.output.clear()
        self.output.reporting = False
        self.state = SessionState.READY
        await self.producer.pause()

    async def close(self, reason: str) -> None:
        if self.state is SessionState.CLOSED:
            return
        logger.info("RTSP session %s closed: %s", self.id, reason)
        self.state = SessionState.CLOSED
        try:
            await self._stop_run()
            if self._played:
                self.output.send_bye()
        finally:
            await self.output.close()
            try:
                await self.producer.close()
            except Exception:
                logger.exception("stream producer of session %s failed to close", self.id)

    async def _run(self) -> None:
        try:
            await self.producer.run(self.output)
            await self.output.drain()
        except ConnectionError:
            return
        except Exception:
            logger.exception("stream producer of session %s failed", self.id)
        # The stream ended (end of footage, live source stopped): say so with RTCP BYE. The
        # session stays PLAYING; data may resume with a new PLAY (ONVIF Streaming §6.9).
        self.output.send_bye()

    async def _stop_run(self) -> None:
        task, self._run_task = self._run_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class SessionTable:
    """All sessions of a server by id; expiry is driven by the server's single sweeper task."""

    def __init__(self) -> None:
        self._sessions: dict[str, RtspSession] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[RtspSession]:
        return iter(list(self._sessions.values()))

    def get(self, session_id: str) -> RtspSession | None:
        return self._sessions.get(session_id)

    def add(self, session: RtspSession) -> None:
        self._sessions[session.id] = session
        self._empty.clear()

    def discard(self, session: RtspSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        if not self._sessions:
            self._empty.set()

    async def wait_empty(self) -> None:
        await self._empty.wait()

    def expired(self, now_ns: int) -> list[RtspSession]:
        """Sessions past their timeout; a session blocked by TCP back-pressure counts as alive."""
        out = []
        for session in self._sessions.values():
            if session.deadline_ns() > now_ns:
                continue
            if session.blocked():
                session.touch()
                continue
            out.append(session)
        return out

    def next_deadline_ns(self) -> int | None:
        if not self._sessions:
            return None
        return min(s.deadline_ns() for s in self._sessions.values())
