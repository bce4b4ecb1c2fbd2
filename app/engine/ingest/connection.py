"""The RTSP control connection to a camera: aiortsp's connection with limits and raw RTP routing.

aiortsp provides the TCP connection, request/response matching and Basic/Digest auth. This
subclass replaces its receive path so that malformed or oversized data from a camera ends the
connection with a clear PeerError instead of a printed traceback, interleaved frames reach the
session as raw bytes (aiortsp would hand them to its single-media transport), and nothing that
could carry a credential reaches the log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from aiortsp.rtsp.connection import RTSPConnection
from aiortsp.rtsp.parser import HTTPLikeMsg, RTSPMessage, RTSPParser, RTSPRequest, RTSPResponse

from app.core.errors import CustosError, PeerError
from app.engine.ingest.url import SourceUrl

#: Largest response head (status line + headers) accepted from a camera.
MAX_RESPONSE_HEAD_BYTES = 16 * 1024
#: Most header lines in one response.
MAX_RESPONSE_HEADERS = 64

#: Called with (channel, frame bytes) for every interleaved frame.
InterleavedHandler = Callable[[int, bytes], None]

_AUTH_LINE = re.compile(r"((?:Proxy-)?Authorization:)[^\r\n]*", re.IGNORECASE)


class _RedactCredentials(logging.Filter):
    """Rewrites aiortsp's wire dumps so Authorization values (Basic is reversible) never log."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = _AUTH_LINE.sub(r"\1 <redacted>", text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


wire_log = logging.getLogger("app.engine.ingest.wire")
wire_log.addFilter(_RedactCredentials())


@dataclasses.dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """One `$` frame of the connection (RFC 2326 §10.12): RTP or RTCP of a channel."""

    id: int
    data: bytes
    type: str = "binary"


_STARTS = (b"RTSP/", *RTSPRequest.CLIENT_REQUESTS)


class _Parser(RTSPParser):  # type: ignore[misc]  # aiortsp is untyped
    """Splits the byte stream into interleaved frames and RTSP messages.

    Differs from aiortsp's splitter in two ways. Interleaved frames are cut out by offset, not
    by re-concatenating the rest of the chunk for every frame (quadratic in the chunk size).
    And a chunk ending in "R" waits for more bytes: aiortsp takes any prefix of a request
    method for a request, so a response whose "RTSP" TCP split after the "R" (RECORD and
    REDIRECT start with R too) would be parsed as a request and its answer lost.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending_msg: Any = None
        self._prev_data = b""

    def parse(self, data: bytes) -> Iterator[RTSPMessage | InterleavedFrame]:
        buf = self._prev_data + data if self._prev_data else bytes(data)
        self._prev_data = b""
        pos, size = 0, len(buf)
        while pos < size:
            if self.pending_msg is not None:
                rest, done = self.pending_msg.feed(buf[pos:] if pos else buf)
                if not done:
                    return  # the message keeps what it has not used yet
                yield self.pending_msg
                self.pending_msg = None
                buf, pos, size = rest, 0, len(rest)
                continue
            if buf[pos] == 0x24:  # '$'
                if size - pos < 4:
                    break
                end = pos + 4 + (buf[pos + 2] << 8 | buf[pos + 3])
                if end > size:
                    break
                yield InterleavedFrame(buf[pos + 1], buf[pos + 4 : end])
                pos = end
            elif buf.startswith(b"\r\n", pos):
                pos += 2
            elif buf.startswith(b"RTSP/", pos):
                self.pending_msg = RTSPResponse()
            elif buf.startswith(RTSPRequest.CLIENT_REQUESTS, pos):
                self.pending_msg = RTSPRequest()
            else:
                head = buf[pos : pos + 16]
                if head == b"\r" or any(start.startswith(head) for start in _STARTS):
                    break  # too short to tell what comes
                raise ValueError(f"unexpected bytes {head!r}")
        self._prev_data = buf[pos:]


def _retrieve(future: asyncio.Future[Any]) -> None:
    # The outcome is read by whoever awaits `closed`; reading it here too keeps asyncio from
    # reporting "exception was never retrieved" when a run ends before anyone awaited it.
    if not future.cancelled():
        future.exception()


class IngestConnection(RTSPConnection):  # type: ignore[misc]  # aiortsp is untyped
    """One RTSP connection to a camera; `closed` completes (or fails) when it ends."""

    def __init__(
        self,
        source: SourceUrl,
        *,
        timeout: float,
        on_interleaved: InterleavedHandler | None = None,
    ) -> None:
        context = ssl.create_default_context() if source.scheme == "rtsps" else None
        super().__init__(
            source.host,
            source.port,
            source.username,
            source.password,
            logger=wire_log,
            ssl=context,
            timeout=timeout,
        )
        self.on_interleaved = on_interleaved
        self.parser = _Parser()
        self.closed: asyncio.Future[Any] = self.result
        self.closed.add_done_callback(_retrieve)

    @property
    def local_host(self) -> str | None:
        transport = self._transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        return str(sockname[0]) if sockname else None

    @property
    def peer_host(self) -> str | None:
        transport = self._transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        return str(peername[0]) if peername else None

    def abort(self, error: CustosError) -> None:
        """End the connection because of `error` (pending requests fail with it)."""
        if not self.closed.done():
            self.closed.set_exception(error)
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        try:
            for message in self.parser.parse(data):
                if isinstance(message, InterleavedFrame):
                    if self.on_interleaved is not None:
                        self.on_interleaved(message.id, message.data)
                elif message.type == "response":
                    waiter = self.active_requests.get(message.cseq)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message)
                else:
                    self.on_request(message)  # aiortsp answers 551: cameras need none of ours
            self._check_limits()
        except CustosError as exc:
            self.abort(exc)
        except Exception as exc:  # noqa: BLE001 - aiortsp's parser raises anything on bad bytes
            self.abort(
                PeerError(f"malformed RTSP data from the camera ({type(exc).__name__}: {exc})")
            )

    def _check_limits(self) -> None:
        pending = self.parser.pending_msg
        if not isinstance(pending, HTTPLikeMsg) or pending.headers is not None:
            return  # bodies are bounded by aiortsp (64 KiB), binary frames by their 16-bit length
        head = len(pending._untreated_data) + sum(len(k) + len(v) for k, v in pending.headerlist)
        if head > MAX_RESPONSE_HEAD_BYTES:
            raise PeerError(
                f"RTSP response head of more than {MAX_RESPONSE_HEAD_BYTES} bytes from the camera"
            )
        if len(pending.headerlist) > MAX_RESPONSE_HEADERS:
            raise PeerError(
                f"RTSP response with more than {MAX_RESPONSE_HEADERS} header lines from the camera"
            )
