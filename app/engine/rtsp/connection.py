"""One RTSP client connection: parse requests, answer them in order, carry interleaved media.

Requests are answered one at a time by a per-connection task, in arrival order. Reading never
waits for writing (ONVIF Streaming PB-38): while media fills the socket, keepalives and PAUSE
are still read and answered. Interleaved RTCP from the client is a session keepalive.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.protocols.rtp.rtcp import RtcpError, parse_rtcp
from app.protocols.rtsp.message import (
    InterleavedFrame,
    RtspParseError,
    RtspRequest,
    RtspResponse,
    encode_interleaved,
    encode_response,
    make_response,
)
from app.protocols.rtsp.parser import RtspParser

if TYPE_CHECKING:
    from app.engine.rtsp.server import RtspServer
    from app.engine.rtsp.session import RtspSession

logger = logging.getLogger(__name__)

#: Requests read ahead of the one being answered before the connection stops reading.
MAX_PENDING_REQUESTS = 16
#: Transport buffer above which media writing waits (set as the high-water mark).
WRITE_HIGH_WATER = 256 * 1024
#: A client that lets this much pile up even though media already waits is not reading at
#: all (it still sends requests but never reads answers): the connection is closed.
MAX_WRITE_BUFFER_BYTES = 4 * 1024 * 1024
#: Interleaved channels are one byte: 128 RTP/RTCP pairs per connection.
MAX_CHANNEL = 255


class InterleavedChannel:
    """A track's RTP/RTCP channel pair on an RTSP connection (RFC 2326 §10.12)."""

    def __init__(self, connection: RtspConnection, channels: tuple[int, int]) -> None:
        self.connection = connection
        self.channels = channels

    def send_rtp(self, packets: list[bytes]) -> None:
        channel = self.channels[0]
        self.connection.write(b"".join(encode_interleaved(channel, p) for p in packets))

    def send_rtcp(self, packet: bytes) -> None:
        self.connection.write(encode_interleaved(self.channels[1], packet))

    async def wait_writable(self) -> None:
        await self.connection.wait_writable()

    def close(self) -> None:
        self.connection.release_channels(self.channels)


# An item of the request queue: a request, or a parse error to answer in its place.
_Item = RtspRequest | RtspParseError


class RtspConnection(asyncio.Protocol):
    """asyncio protocol of one client connection; the server's dispatcher answers requests."""

    def __init__(self, server: RtspServer) -> None:
        self._server = server
        self._parser = RtspParser()
        self._transport: asyncio.Transport | None = None
        self._queue: collections.deque[_Item] = collections.deque()
        self._queued = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost = asyncio.Event()
        self._reading_paused = False
        self._input_failed = False
        self._eof = False
        self._task: asyncio.Task[None] | None = None
        self._channels: dict[int, tuple[RtspSession, int]] = {}
        self.closed = False
        self.peer_host = ""
        self.local_host = ""
        self.last_activity_ns = server.clock.monotonic_ns()
        #: Ids of the sessions created by SETUPs on this connection.
        self.session_ids: set[str] = set()

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.peer_host, self.local_host = str(peer[0]), str(local[0])
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if not self._server.connection_opened(self):
            self.closed = True
            self._lost.set()
            transport.abort()
            return
        self._task = asyncio.get_running_loop().create_task(
            self._serve(), name=f"rtsp-connection-{self.peer_host}"
        )

    def data_received(self, data: bytes) -> None:
        if self._input_failed:
            return
        self.last_activity_ns = self._server.clock.monotonic_ns()
        self._parser.feed(data)
        self._parse_buffered()

    def _parse_buffered(self) -> None:
        while not self.closed and not self._input_failed:
            if len(self._queue) >= MAX_PENDING_REQUESTS:
                # Enough answers are owed: the rest waits in the parser, and reading pauses.
                self._pause_reading()
                return
            try:
                event = self._parser.next_event()
            except RtspParseError as exc:
                logger.info("bad RTSP input from %s: %s", self.peer_host, exc.message)
                self._enqueue(exc)
                if not exc.recoverable:
                    # Framing is lost: answer what was read, then close (see _serve).
                    self._input_failed = True
                    self._pause_reading()
                continue
            if event is None:
                return
            if isinstance(event, RtspRequest):
                self._enqueue(event)
            elif isinstance(event, InterleavedFrame):
                self._on_frame(event)
            # Responses (to requests this server never sends) are ignored.

    def eof_received(self) -> bool | None:
        # The client sent its last request: answer what was read, then close (see _serve).
        self._eof = True
        self._queued.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._lost.set()
        self._writable.set()
        self._queued.set()
        if self._task is not None:
            self._task.cancel()
        self._server.connection_closed(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ------------------------------------------------------------------ writing
    @property
    def write_paused(self) -> bool:
        return not self._writable.is_set()

    async def wait_writable(self) -> None:
        await self._writable.wait()
        if self.closed:
            raise ConnectionError("RTSP connection closed")

    def write(self, data: bytes) -> None:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER_BYTES:
            logger.warning("closing RTSP connection from %s: it reads nothing", self.peer_host)
            transport.abort()
            return
        transport.write(data)

    def send_response(self, response: RtspResponse) -> None:
        self.write(encode_response(response))

    def close(self) -> None:
        """Close after the queued output is written."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping queued output (server shutdown)."""
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        await self._lost.wait()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # ------------------------------------------------------------------ interleaved channels
    def allocate_channels(
        self, session: RtspSession, track: int, wanted: tuple[int, int] | None
    ) -> tuple[int, int] | None:
        """Reserve the wanted channel pair, or the lowest free pair; None when all are taken."""
        candidates: list[tuple[int, int]] = []
        if wanted is not None and wanted[0] != wanted[1] and max(wanted) <= MAX_CHANNEL:
            candidates.append(wanted)
        candidates.extend((c, c + 1) for c in range(0, MAX_CHANNEL, 2))
        for pair in candidates:
            if pair[0] not in self._channels and pair[1] not in self._channels:
                self._channels[pair[0]] = (session, track)
                self._channels[pair[1]] = (session, track)
                return pair
        return None

    def release_channels(self, pair: tuple[int, int]) -> None:
        for channel in pair:
            self._channels.pop(channel, None)

    def _on_frame(self, frame: InterleavedFrame) -> None:
        owner = self._channels.get(frame.channel)
        if owner is None or frame.channel % 2 == 0:
            return  # RTP from the client (no back channel here) or an unknown channel
        try:
            parse_rtcp(frame.data)
        except RtcpError as exc:
            logger.debug("bad RTCP from %s: %s", self.peer_host, exc.message)
            return
        owner[0].touch()

    # ------------------------------------------------------------------ request loop
    def _enqueue(self, item: _Item) -> None:
        self._queue.append(item)
        self._queued.set()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self._input_failed:
            self._reading_paused = False
            self._transport.resume_reading()

    async def _serve(self) -> None:
        while not self.closed:
            if not self._queue:
                self._parse_buffered()
            if not self._queue:
                if self._eof:
                    self.close()
                    return
                self._queued.clear()
                await self._queued.wait()
                continue
            item = self._queue.popleft()
            if isinstance(item, RtspParseError):
                self.send_response(make_response(None, item.status, cseq=item.cseq))
                if not item.recoverable:
                    self.close()
                    return
            else:
                after = await self._answer(item)
                if after is not None:
                    after()
            if len(self._queue) < MAX_PENDING_REQUESTS // 2:
                self._resume_reading()
                self._parse_buffered()

    async def _answer(self, request: RtspRequest) -> Callable[[], None] | None:
        reply = await self._server.dispatch(self, request)
        self.send_response(reply.response)
        return reply.after
