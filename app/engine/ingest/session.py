"""The RTSP session of one connected run: OPTIONS, DESCRIBE, SETUP of every track, PLAY,
keepalive and receiver reports while streaming, TEARDOWN at the end (RFC 2326).

aiortsp's own session handles one media only, so the flow is written here on its connection.
Everything that ends the run (connection loss, dead stream, a broken track, RTCP BYE, a failed
keepalive) completes `ended` with the error; the receiver decides what happens next.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiortsp.rtsp.errors import RTSPConnectionError, RTSPResponseError, RTSPTimeoutError

from app.core.errors import AuthError, CustosError, PeerError
from app.core.media import CodecParams
from app.core.time import Clock
from app.engine.ingest.connection import IngestConnection
from app.engine.ingest.reorder import DEFAULT_REORDER_WINDOW
from app.engine.ingest.track import FrameHandler, Track, describe
from app.engine.ingest.udp import UdpPair
from app.engine.ingest.url import SourceUrl, strip_credentials
from app.protocols.rtp.formats import params_from_sdp
from app.protocols.rtp.rtcp import build_rr, build_sdes
from app.protocols.rtsp.headers import DEFAULT_SESSION_TIMEOUT_S, parse_session
from app.protocols.rtsp.transport import LowerTransport, parse_transport
from app.protocols.sdp import SessionDescription, parse_sdp, resolve_control

#: Most tracks set up in one session (video, audio, metadata and a few more).
MAX_TRACKS = 8
#: Packets that may arrive before the PLAY answer has been handled; held, then delivered.
MAX_EARLY_PACKETS = 1024
#: Keepalive requests go out at this fraction of the session timeout.
KEEPALIVE_FRACTION = 0.8
#: A camera's session timeout is clamped to this range so keepalives neither flood nor starve it.
MIN_SESSION_TIMEOUT_S = 5
MAX_SESSION_TIMEOUT_S = 3600
#: RTCP receiver reports (RFC 3550 §6.2: a receiver reports at least every few seconds).
RECEIVER_REPORT_INTERVAL_S = 5.0
#: TEARDOWN is polite, not essential: a camera that does not answer quickly is left alone.
TEARDOWN_TIMEOUT_S = 2.0
#: Media types set up; others (text, message …) are skipped.
MEDIA_TYPES = ("video", "audio", "application")
#: Statuses a keepalive GET_PARAMETER may get from a camera that does not implement it.
_UNSUPPORTED = frozenset({405, 501, 551})
_SESSION_NOT_FOUND = 454
_CNAME = f"custos@{os.uname().nodename}"

Transport = Literal["tcp", "udp"]
log = logging.getLogger("app.engine.ingest")


class SourceAuthError(AuthError):
    """The camera refused the credentials in the URI (or wants some and the URI has none)."""


class RtspStatusError(PeerError):
    """The camera answered a request with a non-2xx status."""

    def __init__(self, method: str, status: int, reason: str) -> None:
        super().__init__(f"{method} answered {status} {reason}".rstrip())
        self.method = method
        self.status = status


@dataclasses.dataclass(frozen=True, slots=True)
class SessionOptions:
    """How a session talks to the camera; see Receiver for the meaning of each."""

    transport: Transport = "tcp"
    request_timeout_s: float = 10.0
    dead_after_s: float = 10.0
    reorder_window: int = DEFAULT_REORDER_WINDOW


def _header(response: Any, name: str) -> str | None:
    value = response.headers.get(name) if response.headers else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value is not None else None


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class CameraSession:
    """One connection and RTSP session to a camera; `open`, then `start_streaming`, then `close`."""

    def __init__(
        self, source: SourceUrl, options: SessionOptions, *, clock: Clock, on_frame: FrameHandler
    ) -> None:
        self.source = source
        self.options = options
        self.tracks: list[Track] = []
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ended.add_done_callback(_retrieve)
        self.early_dropped = 0
        self._clock = clock
        self._on_frame = on_frame
        self._conn = IngestConnection(
            source, timeout=options.request_timeout_s, on_interleaved=self._on_interleaved
        )
        self._conn.closed.add_done_callback(self._on_connection_closed)
        self._channels: dict[int, tuple[Track, bool]] = {}
        #: Per track, how to send it an RTCP packet (interleaved channel or UDP address).
        self._rtcp_out: list[Callable[[bytes], None]] = []
        self._media_indexes: list[int] = []
        self._udp: list[UdpPair] = []
        self._session_id: str | None = None
        self._timeout_s = DEFAULT_SESSION_TIMEOUT_S
        self._keepalive_method = "OPTIONS"
        self._aggregate_url = source.url
        self._streaming = False
        self._early: list[tuple[Track, bool, bytes]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self._last_rtp = 0.0
        self._ssrc = int.from_bytes(os.urandom(4), "big")

    # ------------------------------------------------------------------ requests

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None
    ) -> Any:
        if self._conn.closed.done():
            raise self._closed_error()
        timeout = self.options.request_timeout_s
        try:
            return await self._conn.send_request(
                method, url, headers=dict(headers or {}), timeout=timeout
            )
        except CustosError:
            raise
        except RTSPResponseError as exc:
            status = exc.response.status if exc.response is not None else 0
            reason = exc.response.status_msg if exc.response is not None else ""
            if status == 401:
                raise SourceAuthError(
                    f"{method} answered 401 Unauthorized: "
                    + (
                        "the camera refused the user name or password"
                        if self.source.username
                        else "the camera requires credentials and the URI has none"
                    )
                ) from None
            raise RtspStatusError(method, status, str(reason or "")) from None
        except RTSPTimeoutError:
            raise PeerError(f"no answer to {method} within {timeout:g} s") from None
        except RTSPConnectionError as exc:
            raise PeerError(f"connection lost during {method}: {exc}") from None
        except Exception as exc:
            # aiortsp's auth code asserts on challenges it cannot answer (e.g. MD5-sess).
            raise PeerError(f"{method} failed: {type(exc).__name__}: {exc}") from exc

    def _closed_error(self) -> CustosError:
        closed = self._conn.closed
        error = closed.exception() if closed.done() and not closed.cancelled() else None
        if isinstance(error, CustosError):
            return error
        if error is not None:
            return PeerError(f"the connection to the camera failed: {error}")
        return PeerError("the camera closed the connection")

    # ------------------------------------------------------------------ opening

    async def open(self) -> list[CodecParams]:
        """Connect and negotiate up to PLAY; returns the tracks' parameters in track order."""
        try:
            await self._conn.prepare()
        except RTSPConnectionError as exc:
            cause = exc.__cause__
            detail = f": {cause}" if cause is not None and str(cause) else ""
            raise PeerError(
                f"cannot connect to {self.source.host}:{self.source.port}{detail or ' (timeout)'}"
            ) from None
        url = self.source.url
        try:
            answer = await self._request("OPTIONS", url)
            public = _header(answer, "public") or ""
            if "GET_PARAMETER" in (m.strip().upper() for m in public.split(",")):
                self._keepalive_method = "GET_PARAMETER"
        except RtspStatusError as exc:
            log.debug("%s: OPTIONS refused (%s); going on without it", self.source.redacted, exc)
        sdp, base = await self._describe(url)
        self._make_tracks(sdp)
        for track, media_index in zip(self.tracks, self._media_indexes, strict=True):
            await self._setup(track, strip_credentials(sdp.media_control_url(media_index, base)))
        self._aggregate_url = strip_credentials(resolve_control(base, sdp.control))
        assert self._session_id is not None
        await self._request(
            "PLAY", self._aggregate_url, {"Session": self._session_id, "Range": "npt=0.000-"}
        )
        return [track.params for track in self.tracks]

    async def _describe(self, url: str) -> tuple[SessionDescription, str]:
        answer = await self._request("DESCRIBE", url, {"Accept": "application/sdp"})
        content_type = _header(answer, "content-type")
        if content_type is not None and not content_type.lower().startswith("application/sdp"):
            raise PeerError(f"DESCRIBE answered {content_type!r} instead of application/sdp")
        body = answer.data
        if not body:
            raise PeerError("DESCRIBE answer has no session description")
        sdp = parse_sdp(body)
        base = _header(answer, "content-base") or _header(answer, "content-location") or url
        return sdp, strip_credentials(base.strip())

    def _make_tracks(self, sdp: SessionDescription) -> None:
        window = self.options.reorder_window if self.options.transport == "udp" else 0
        for media_index, media in enumerate(sdp.media):
            if media.media not in MEDIA_TYPES:
                continue
            try:
                params = params_from_sdp(media)
                payload_type = media.payload_types[0]
            except (CustosError, IndexError) as exc:
                reason = exc.message if isinstance(exc, CustosError) else "no payload type"
                log.info(
                    "%s: skipping m=%s section %d: %s",
                    self.source.redacted,
                    media.media,
                    media_index,
                    reason,
                )
                continue
            if len(self.tracks) >= MAX_TRACKS:
                log.info(
                    "%s: more than %d tracks; the rest are skipped",
                    self.source.redacted,
                    MAX_TRACKS,
                )
                break
            index = len(self.tracks)
            label = f"{self.source.redacted} {describe(index, params)}"
            self.tracks.append(
                Track(
                    index,
                    params,
                    payload_type,
                    clock=self._clock,
                    on_frame=self._on_frame,
                    label=label,
                    reorder_window=window,
                )
            )
            self._media_indexes.append(media_index)
        if not self.tracks:
            kinds = ", ".join(f"{m.media} {m.formats}" for m in sdp.media) or "none"
            raise PeerError(f"the camera offers no supported media (offered: {kinds})")

    async def _setup(self, track: Track, url: str) -> None:
        headers = {}
        if self._session_id is not None:
            headers["Session"] = self._session_id
        senders: set[str] = set()
        pair: UdpPair | None = None
        if self.options.transport == "tcp":
            channel = 2 * track.index
            headers["Transport"] = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
        else:
            peer = self._conn.peer_host
            local = self._conn.local_host
            if peer is None or local is None:
                raise self._closed_error()
            senders.add(peer)
            pair = await UdpPair.open(
                local,
                senders,
                functools.partial(self._on_packet, track, False),
                functools.partial(self._on_packet, track, True),
            )
            self._udp.append(pair)
            headers["Transport"] = f"RTP/AVP;unicast;client_port={pair.rtp_port}-{pair.rtcp_port}"
        answer = await self._request("SETUP", url, headers)
        session_value = _header(answer, "session")
        if self._session_id is None:
            if session_value is None:
                raise PeerError("SETUP answer has no Session header")
            session = parse_session(session_value)
            timeout = session.timeout if session.timeout is not None else DEFAULT_SESSION_TIMEOUT_S
            self._session_id = session.session_id
            self._timeout_s = min(max(timeout, MIN_SESSION_TIMEOUT_S), MAX_SESSION_TIMEOUT_S)
        transport_value = _header(answer, "transport")
        if transport_value is None:
            raise PeerError("SETUP answer has no Transport header")
        reply = parse_transport(transport_value)[0]
        if pair is None:
            if reply.lower is not LowerTransport.TCP and reply.interleaved is None:
                raise PeerError(f"asked for RTP over TCP, the camera answered {transport_value!r}")
            rtp_channel, rtcp_channel = reply.interleaved or (2 * track.index, 2 * track.index + 1)
            for channel, is_rtcp in ((rtp_channel, False), (rtcp_channel, True)):
                if channel in self._channels:
                    raise PeerError(f"the camera gave interleaved channel {channel} to two streams")
                self._channels[channel] = (track, is_rtcp)
            self._rtcp_out.append(functools.partial(self._conn.send_binary, rtcp_channel))
        else:
            if reply.lower is LowerTransport.TCP:
                raise PeerError(f"asked for RTP over UDP, the camera answered {transport_value!r}")
            if reply.source:
                senders.add(reply.source)
            if reply.server_port is not None:
                address = (reply.source or next(iter(senders)), reply.server_port[1])
                self._rtcp_out.append(functools.partial(pair.send_rtcp, addr=address))

    # ------------------------------------------------------------------ streaming

    def start_streaming(self) -> None:
        """Deliver what arrived early, then watch the stream and keep the session alive."""
        loop = asyncio.get_running_loop()
        self._streaming = True
        self._last_rtp = loop.time()
        early, self._early = self._early, []
        for track, is_rtcp, data in early:
            self._on_packet(track, is_rtcp, data)
        self._watchdog = loop.call_later(self.options.dead_after_s, self._check_alive)
        self._tasks.append(loop.create_task(self._keepalive(), name="ingest-keepalive"))
        self._tasks.append(loop.create_task(self._receiver_reports(), name="ingest-rtcp-rr"))

    def fail(self, error: BaseException) -> None:
        """End the run with `error` (the first reason wins)."""
        if not self.ended.done():
            self.ended.set_exception(error)

    def _on_connection_closed(self, closed: asyncio.Future[Any]) -> None:
        self.fail(self._closed_error())

    def _on_interleaved(self, channel: int, data: bytes) -> None:
        route = self._channels.get(channel)
        if route is not None:
            self._on_packet(route[0], route[1], data)

    def _on_packet(self, track: Track, is_rtcp: bool, data: bytes) -> None:
        if self.ended.done():
            return
        if not self._streaming:
            if len(self._early) < MAX_EARLY_PACKETS:
                self._early.append((track, is_rtcp, data))
            else:
                self.early_dropped += 1
            return
        try:
            if is_rtcp:
                track.on_rtcp(data)
                if track.bye:
                    raise PeerError(
                        f"{describe(track.index, track.params)}: the camera sent RTCP BYE"
                    )
            else:
                self._last_rtp = asyncio.get_running_loop().time()
                track.on_rtp(data)
        except Exception as exc:  # noqa: BLE001 - the receiver logs it; a sink bug keeps its traceback
            self.fail(exc)

    def _check_alive(self) -> None:
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_rtp
        limit = self.options.dead_after_s
        if idle >= limit:
            self.fail(PeerError(f"no RTP from the camera for {limit:g} s"))
        else:
            self._watchdog = loop.call_later(limit - idle, self._check_alive)

    async def _keepalive(self) -> None:
        interval = self._timeout_s * KEEPALIVE_FRACTION
        try:
            while True:
                await asyncio.sleep(interval)
                assert self._session_id is not None
                try:
                    await self._request(
                        self._keepalive_method, self._aggregate_url, {"Session": self._session_id}
                    )
                except RtspStatusError as exc:
                    if exc.status == _SESSION_NOT_FOUND:
                        raise PeerError(
                            "the camera forgot the session (454 on keepalive)"
                        ) from None
                    if exc.status in _UNSUPPORTED and self._keepalive_method != "OPTIONS":
                        self._keepalive_method = "OPTIONS"
                    # Any other answer still shows the session is alive on the camera.
        except CustosError as exc:
            self.fail(exc)

    async def _receiver_reports(self) -> None:
        while True:
            await asyncio.sleep(RECEIVER_REPORT_INTERVAL_S)
            report = build_rr(self._ssrc) + build_sdes(self._ssrc, _CNAME)
            for send in self._rtcp_out:
                send(report)

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Stop timers and tasks, TEARDOWN if the connection is still up, release sockets."""
        self._streaming = False
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session_id is not None and not self._conn.closed.done():
            try:
                await asyncio.wait_for(
                    self._request("TEARDOWN", self._aggregate_url, {"Session": self._session_id}),
                    TEARDOWN_TIMEOUT_S,
                )
            except (TimeoutError, CustosError) as exc:
                log.debug("%s: TEARDOWN not confirmed: %s", self.source.redacted, exc)
        self._conn.close()
        for pair in self._udp:
            pair.close()
        self._udp.clear()
        self._early.clear()
