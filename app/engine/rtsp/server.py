"""The asyncio RTSP server core: listener, mount table, session table and its single sweeper.

    server = RtspServer(authenticator=DigestAuthenticator("Custos", lookup_password))
    server.mount("live/cam1", LiveResource(hub))     # hub: any app.core.ports.LiveSource
    async with server:                               # close() on exit: BYE, sockets closed
        await server.start("0.0.0.0", 554)           # port 0 picks a free port: server.port
        ...                                          # clients use server.url("live/cam1")

Sessions expire `session_timeout_s` (or their resource's own, see resource.py) after their last
keepalive (any request naming them but
TEARDOWN, or RTCP from the client). One housekeeping task sleeps until the earliest deadline
and reclaims expired sessions and idle connections; there are no per-session timers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
from collections.abc import Callable, Coroutine
from types import TracebackType

from app.core.errors import ConfigError, LimitError
from app.core.media import CodecParams
from app.core.time import NS_PER_SECOND, Clock, SystemClock
from app.engine.rtsp.connection import RtspConnection
from app.engine.rtsp.dispatch import Dispatcher, Reply, new_session_id
from app.engine.rtsp.output import MAX_QUEUED_UNITS, REPORT_INTERVAL_S, SessionOutput
from app.engine.rtsp.resource import (
    RequestContext,
    Resource,
    ResourceDescription,
    ResourceResolver,
)
from app.engine.rtsp.session import RtspSession, SessionTable
from app.protocols.rtp.codec import Packetizer
from app.protocols.rtp.formats import packetizer_for
from app.protocols.rtp.rtcp import RtcpError, parse_rtcp
from app.protocols.rtsp.auth import DigestAuthenticator
from app.protocols.rtsp.headers import DEFAULT_SESSION_TIMEOUT_S
from app.protocols.rtsp.message import RtspRequest

logger = logging.getLogger(__name__)

#: Sessions the server holds at once; SETUP beyond this is answered 453.
MAX_SESSIONS = 4096
#: Sessions one connection may create (each may hold UDP sockets).
MAX_SESSIONS_PER_CONNECTION = 128
#: Open client connections; more are closed at once.
MAX_CONNECTIONS = 1024
#: Shortest pause of the sweeper, so a deadline that cannot be cleared at once never spins.
MIN_SWEEP_DELAY_S = 0.01

_MOUNT_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")


class RtspServer:
    """An RTSP 1.0 server for mounted resources; see the module docstring."""

    def __init__(
        self,
        *,
        authenticator: DigestAuthenticator | None = None,
        clock: Clock | None = None,
        session_timeout_s: int = DEFAULT_SESSION_TIMEOUT_S,
        idle_timeout_s: int | None = None,
        max_sessions: int = MAX_SESSIONS,
        max_connections: int = MAX_CONNECTIONS,
        max_queue: int = MAX_QUEUED_UNITS,
        report_interval_s: float = REPORT_INTERVAL_S,
        server_name: str = "Custos",
        packetizer_factory: Callable[[CodecParams], Packetizer] = packetizer_for,
        rng: random.Random | None = None,
    ) -> None:
        if session_timeout_s <= 0:
            raise ConfigError(f"session timeout must be positive, got {session_timeout_s}")
        self.authenticator = authenticator
        self.clock = clock or SystemClock()
        #: Timeout (s) given to new sessions; existing sessions keep theirs (ONVIF RP-10).
        self.session_timeout_s = session_timeout_s
        #: A connection without sessions that sends nothing for this long is closed.
        self.idle_timeout_s = idle_timeout_s or session_timeout_s
        self.max_sessions = max_sessions
        self.max_connections = max_connections
        self.max_queue = max_queue
        self.report_interval_s = report_interval_s
        self.server_name = server_name
        self.packetizer_factory = packetizer_factory
        # SSRCs, sequence numbers and RTP times must not be guessable (RFC 3550 §5.1).
        self.rng = rng or random.SystemRandom()
        self.sessions = SessionTable()
        self._mounts: dict[str, Resource | ResourceResolver] = {}
        self._connections: set[RtspConnection] = set()
        self._dispatcher = Dispatcher(self)
        self._server: asyncio.Server | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sweep_at_ns: int | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self._dropped_by_closed = 0
        self._host = ""
        self._port = 0

    # ------------------------------------------------------------------ mounts
    def mount(self, path: str, resource: Resource | ResourceResolver) -> None:
        """Serve `resource` at rtsp://host:port/<path> (replaces an existing mount); a
        ResourceResolver serves the resources it names below <path>."""
        key = path.strip("/")
        if not _MOUNT_PATH.fullmatch(key):
            raise ConfigError(f"invalid RTSP mount path {path!r}")
        self._mounts[key] = resource

    def unmount(self, path: str) -> None:
        self._mounts.pop(path.strip("/"), None)

    def find_mount(self, path: str) -> tuple[str, Resource | ResourceResolver] | None:
        """The longest mount that `path` equals or lies below."""
        best: str | None = None
        for mount in self._mounts:
            if (mount == "" or path == mount or path.startswith(mount + "/")) and (
                best is None or len(mount) > len(best)
            ):
                best = mount
        return None if best is None else (best, self._mounts[best])

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (port 0 picks a free port, see `.port`)."""
        if self._server is not None:
            raise ConfigError("the RTSP server is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: RtspConnection(self), host, port)
        sockname = self._server.sockets[0].getsockname()
        self._host, self._port = str(sockname[0]), int(sockname[1])
        self._housekeeper = loop.create_task(self._housekeeping(), name="rtsp-sweeper")
        logger.info("RTSP server listening on %s:%d", self._host, self._port)

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return self._host

    def url(self, path: str = "") -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"rtsp://{host}:{self._port}/{path.strip('/')}"

    async def close(self) -> None:
        """Stop listening, end every session (RTCP BYE), close every connection."""
        if self._server is not None:
            self._server.close()
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            await asyncio.gather(self._housekeeper, return_exceptions=True)
            self._housekeeper = None
        for session in self.sessions:
            await self.close_session(session, "server shutdown")
        for connection in list(self._connections):
            connection.abort()
        for connection in list(self._connections):
            await connection.wait_closed()
        while self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RtspServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ connections
    async def dispatch(self, connection: RtspConnection, request: RtspRequest) -> Reply:
        return await self._dispatcher.dispatch(connection, request)

    def connection_opened(self, connection: RtspConnection) -> bool:
        if len(self._connections) >= self.max_connections:
            logger.warning("refusing RTSP connection from %s: too many", connection.peer_host)
            return False
        self._connections.add(connection)
        self._schedule(connection.last_activity_ns + self.idle_timeout_s * NS_PER_SECOND)
        return True

    def connection_closed(self, connection: RtspConnection) -> None:
        self._connections.discard(connection)
        for session in self.sessions:
            if session.interleaved_connection is connection:
                self._forget(session)
                self._spawn(session.close("its RTSP connection closed"))

    # ------------------------------------------------------------------ sessions
    def create_session(
        self,
        connection: RtspConnection,
        mount: str,
        resource: Resource,
        description: ResourceDescription,
        context: RequestContext,
        owner: str | None,
    ) -> RtspSession:
        if len(self.sessions) >= self.max_sessions:
            raise LimitError(f"the server holds {len(self.sessions)} sessions already")
        if len(connection.session_ids) >= MAX_SESSIONS_PER_CONNECTION:
            raise LimitError(f"connection holds {MAX_SESSIONS_PER_CONNECTION} sessions already")
        session_id = new_session_id()
        output = SessionOutput(
            {},
            clock=self.clock,
            cname=f"custos-{session_id}",
            max_queue=self.max_queue,
            report_interval_s=self.report_interval_s,
        )
        session = RtspSession(
            session_id,
            mount=mount,
            resource=resource,
            description=description,
            producer=resource.create_producer(context, description),
            output=output,
            owner=owner,
            timeout_s=self.session_timeout_for(resource),
            clock=self.clock,
            origin=connection,
        )
        self.sessions.add(session)
        connection.session_ids.add(session_id)
        self._schedule(session.deadline_ns())
        return session

    def session_timeout_for(self, resource: Resource) -> int:
        """Whole seconds: the resource's `session_timeout_s()` if it has one, else the server's."""
        hook = getattr(resource, "session_timeout_s", None)
        value: object = hook() if callable(hook) else None
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            return self.session_timeout_s
        return max(1, math.ceil(value))

    async def close_session(self, session: RtspSession, reason: str) -> None:
        """End a session; completes even if the caller is cancelled (its client went away)."""
        self._forget(session)
        # A separate task, so cancelling the request that asked (the client closed its
        # connection right after TEARDOWN) cannot leave sockets or a producer behind.
        await asyncio.shield(self._spawn(session.close(reason)))

    def _forget(self, session: RtspSession) -> None:
        if self.sessions.get(session.id) is session:
            self._dropped_by_closed += session.output.dropped_units
        self.sessions.discard(session)
        session.origin.session_ids.discard(session.id)

    def rtcp_received(self, session: RtspSession, data: bytes) -> None:
        """RTCP from a session's client (receiver reports): counts as keepalive."""
        try:
            parse_rtcp(data)
        except RtcpError as exc:
            logger.debug("ignoring bad RTCP for session %s: %s", session.id, exc.message)
            return
        session.touch()

    async def wait_no_sessions(self) -> None:
        """Return once the session table is empty (tests, graceful shutdown)."""
        await self.sessions.wait_empty()

    @property
    def dropped_units(self) -> int:
        """Units dropped by the live drop policy since the server started (all sessions)."""
        return self._dropped_by_closed + sum(s.output.dropped_units for s in self.sessions)

    # ------------------------------------------------------------------ housekeeping
    async def sweep(self) -> int:
        """Close expired sessions and idle connections now; returns the sessions reclaimed."""
        now = self.clock.monotonic_ns()
        expired = self.sessions.expired(now)
        for session in expired:
            await self.close_session(session, f"timed out after {session.timeout_s} s")
        idle_ns = self.idle_timeout_s * NS_PER_SECOND
        for connection in list(self._connections):
            if not connection.session_ids and now - connection.last_activity_ns > idle_ns:
                logger.info("closing idle RTSP connection from %s", connection.peer_host)
                connection.close()
                self._connections.discard(connection)
        return len(expired)

    def _next_deadline_ns(self) -> int | None:
        idle_ns = self.idle_timeout_s * NS_PER_SECOND
        deadlines = [c.last_activity_ns + idle_ns for c in self._connections if not c.session_ids]
        session_deadline = self.sessions.next_deadline_ns()
        if session_deadline is not None:
            deadlines.append(session_deadline)
        return min(deadlines) if deadlines else None

    def _schedule(self, deadline_ns: int) -> None:
        # Only wake the sweeper when the new deadline comes before the one it sleeps towards.
        if self._sweep_at_ns is None or deadline_ns < self._sweep_at_ns:
            self._wake.set()

    async def _housekeeping(self) -> None:
        while True:
            self._wake.clear()
            self._sweep_at_ns = self._next_deadline_ns()
            if self._sweep_at_ns is None:
                await self._wake.wait()
                continue
            delay = (self._sweep_at_ns - self.clock.monotonic_ns()) / NS_PER_SECOND
            try:
                async with asyncio.timeout(max(delay, MIN_SWEEP_DELAY_S)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            try:
                await self.sweep()
            except Exception:
                logger.exception("RTSP session sweep failed")

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)
        return task
