"""The RTSP request handlers of the server core, and the translation of errors to statuses.

OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER and SET_PARAMETER, with Digest
authentication and feature tags.

Order of checks per request: CSeq (400), method known (405/501), credentials (401, not for
OPTIONS), address (404), Require tags (551), Session (454), then the method itself. Domain
errors are translated here by their kind; no traceback reaches the client.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, unquote, urlsplit

from app.core.errors import CustosError, ErrorKind, ProtocolError
from app.engine.rtsp.connection import InterleavedChannel, RtspConnection
from app.engine.rtsp.output import PacketChannel, TrackSender
from app.engine.rtsp.resource import (
    PlayRequest,
    RequestContext,
    Resource,
    ResourceDescription,
    ResourceResolver,
    RtspStatusError,
)
from app.engine.rtsp.session import RtspSession, SessionState
from app.engine.rtsp.udp import open_udp_channel
from app.protocols.rtsp.auth import DigestError
from app.protocols.rtsp.headers import (
    RtpInfo,
    SessionHeader,
    format_feature_tags,
    format_rtp_info,
    parse_cseq,
    parse_feature_tags,
    parse_frames,
    parse_immediate,
    parse_rate_control,
    parse_scale,
    parse_session,
    parse_speed,
)
from app.protocols.rtsp.message import (
    RtspParseError,
    RtspRequest,
    RtspResponse,
    make_response,
    redact_url,
)
from app.protocols.rtsp.range import parse_range
from app.protocols.rtsp.transport import LowerTransport, TransportSpec, parse_transport

if TYPE_CHECKING:
    from app.engine.rtsp.server import RtspServer

logger = logging.getLogger(__name__)

PUBLIC_METHODS = (
    "OPTIONS",
    "DESCRIBE",
    "SETUP",
    "PLAY",
    "PAUSE",
    "TEARDOWN",
    "GET_PARAMETER",
    "SET_PARAMETER",
)
#: RFC 2326 methods this server does not implement: 405 with Allow (other names get 501).
UNSUPPORTED_METHODS = ("ANNOUNCE", "RECORD", "REDIRECT")
#: Methods that may address the server itself with the Request-URI "*".
_STAR_METHODS = ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER")

_KIND_STATUS = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FAILED_PRECONDITION: 455,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.RESOURCE_EXHAUSTED: 453,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.DATA_LOSS: 500,
    ErrorKind.UNIMPLEMENTED: 501,
    ErrorKind.INTERNAL: 500,
}


@dataclasses.dataclass(slots=True)
class Reply:
    """A response, and what to do once it is written (start delivery after PLAY)."""

    response: RtspResponse
    after: Callable[[], None] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """Where a Request-URI points: a mount (None for "*") and the part after it."""

    mount: str | None
    resource: Resource | None
    base_url: str
    remainder: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """One request with what the checks found out about it: the arguments of every handler."""

    connection: RtspConnection
    request: RtspRequest
    target: _Target
    username: str | None
    session: RtspSession | None


class _Unauthorized(Exception):
    def __init__(self, stale: bool) -> None:
        super().__init__("unauthorized")
        self.stale = stale


_Handler = Callable[[_Call], Awaitable[Reply]]
_T = TypeVar("_T")


class Dispatcher:
    """Answers requests for one server; stateless apart from the server it serves."""

    def __init__(self, server: RtspServer) -> None:
        self._server = server
        self._handlers: dict[str, _Handler] = {
            "OPTIONS": self._options,
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._parameter,
            "SET_PARAMETER": self._parameter,
        }

    async def dispatch(self, connection: RtspConnection, request: RtspRequest) -> Reply:
        try:
            parse_cseq(request.headers.get("CSeq"))
            reply = await self._handle(connection, request)
        except _Unauthorized as exc:
            auth = self._server.authenticator
            assert auth is not None
            challenges = [("WWW-Authenticate", v) for v in auth.challenges(stale=exc.stale)]
            reply = Reply(make_response(request, 401, headers=challenges))
        except RtspStatusError as exc:
            self._log_refusal(request, exc.status, exc.message)
            reply = Reply(make_response(request, exc.status, headers=exc.headers))
        except RtspParseError as exc:
            self._log_refusal(request, exc.status, exc.message)
            reply = Reply(make_response(request, exc.status))
        except CustosError as exc:
            status = _KIND_STATUS.get(exc.kind, 500)
            self._log_refusal(request, status, exc.message)
            reply = Reply(make_response(request, status))
        except Exception:
            logger.exception("RTSP %s %s failed", request.method, redact_url(request.uri[:200]))
            reply = Reply(make_response(request, 500))
        reply.response.headers.add("Server", self._server.server_name)
        return reply

    async def _handle(self, connection: RtspConnection, request: RtspRequest) -> Reply:
        method = request.method
        handler = self._handlers.get(method)
        if handler is None:
            if method in UNSUPPORTED_METHODS:
                raise RtspStatusError(
                    405, f"{method} is not supported", headers=[("Allow", _PUBLIC)]
                )
            raise RtspStatusError(501, f"unknown method {method}", headers=[("Public", _PUBLIC)])
        username = self._authenticate(request)
        target = self._resolve(request)
        self._check_require(request, target)
        session = self._session_of(request, target, username)
        if session is not None and method != "TEARDOWN":
            session.touch()
        return await handler(_Call(connection, request, target, username, session))

    @staticmethod
    def _log_refusal(request: RtspRequest, status: int, message: str) -> None:
        uri = redact_url(request.uri[:200])
        logger.info("%s %s -> %d: %s", request.method, uri, status, message)

    # ------------------------------------------------------------------ checks
    def _authenticate(self, request: RtspRequest) -> str | None:
        auth = self._server.authenticator
        if auth is None or request.method == "OPTIONS":
            return None
        try:
            return auth.authenticate(request.method, request.headers.get("Authorization"))
        except DigestError as exc:
            if request.headers.get("Authorization") is not None:
                logger.info("RTSP authentication failed: %s", exc.message)
            raise _Unauthorized(exc.stale) from None

    def _resolve(self, request: RtspRequest) -> _Target:
        if request.uri == "*":
            if request.method not in _STAR_METHODS:
                raise RtspStatusError(
                    405, f"{request.method} needs a resource URL", headers=[("Allow", _STAR)]
                )
            return _Target(None, None, "", "")
        try:
            parts = urlsplit(request.uri)
            parts.port  # noqa: B018  (validates the port; raises ValueError)
        except ValueError:
            raise RtspStatusError(400, "malformed Request-URI") from None
        if parts.scheme.lower() not in ("rtsp", "rtsps", "rtspt", ""):
            raise RtspStatusError(400, f"not an RTSP URL (scheme {parts.scheme[:20]!r})")
        path = unquote(parts.path).strip("/")
        found = self._server.find_mount(path)
        if found is None:
            if request.method in _STAR_METHODS:
                return _Target(None, None, "", "")
            raise RtspStatusError(404, f"nothing is mounted at /{path}")
        mount, entry = found
        remainder = path[len(mount) :].strip("/")
        resource: Resource
        if isinstance(entry, ResourceResolver):
            resolved = entry.resolve(remainder)
            if resolved is None:
                raise RtspStatusError(404, f"nothing is served at /{path[:200]}")
            named, resource = resolved
            named = named.strip("/")
            mount = f"{mount}/{named}" if mount else named
            remainder = remainder[len(named) :].strip("/")
        else:
            resource = entry
        prefix = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
        base = f"{prefix}/{quote(mount)}/" if mount else f"{prefix}/"
        return _Target(mount, resource, base, remainder)

    def _check_require(self, request: RtspRequest, target: _Target) -> None:
        value = request.headers.get_joined("Require")
        if value is None:
            return
        features = target.resource.features if target.resource is not None else frozenset()
        unsupported = [tag for tag in parse_feature_tags(value) if tag not in features]
        if unsupported:
            raise RtspStatusError(
                551,
                f"unsupported feature tags {unsupported}",
                headers=[("Unsupported", format_feature_tags(unsupported))],
            )

    def _session_of(
        self, request: RtspRequest, target: _Target, username: str | None
    ) -> RtspSession | None:
        value = request.headers.get("Session")
        if value is None:
            return None
        try:
            header = parse_session(value)
        except RtspParseError:
            raise RtspStatusError(454, f"malformed Session header {value[:40]!r}") from None
        session = self._server.sessions.get(header.session_id)
        if (
            session is None
            or (self._server.authenticator is not None and session.owner != username)
            or (target.mount is not None and target.mount != session.mount)
        ):
            raise RtspStatusError(454, f"no session {header.session_id!r} here")
        return session

    # ------------------------------------------------------------------ methods
    async def _options(self, call: _Call) -> Reply:
        headers = [("Public", _PUBLIC)]
        if call.session is not None:
            headers.append(("Session", self._session_value(call.session)))
        return _ok(call, headers)

    async def _describe(self, call: _Call) -> Reply:
        target = call.target
        resource = self._require_resource(target)
        if target.remainder:
            raise RtspStatusError(404, f"DESCRIBE of a track URL (/{target.remainder[:80]})")
        description = await resource.describe(_context(call))
        headers = [("Content-Type", "application/sdp"), ("Content-Base", target.base_url)]
        return _ok(call, headers, body=description.sdp.to_bytes())

    async def _setup(self, call: _Call) -> Reply:
        connection, target, session = call.connection, call.target, call.session
        resource = self._require_resource(target)
        context = _context(call)
        if session is not None:
            description = session.description
        else:
            description = await resource.describe(context)
        index = self._setup_track(description, target)
        if session is not None and session.state is SessionState.PLAYING:
            raise RtspStatusError(455, "SETUP while playing: PAUSE first")
        spec = _choose_transport(call.request)
        created = session is None
        if session is None:
            assert target.mount is not None
            session = self._server.create_session(
                connection, target.mount, resource, description, context, call.username
            )
        try:
            reply_spec = await self._open_track(connection, session, index, spec)
        except BaseException:
            if created:
                await self._server.close_session(session, "SETUP failed")
            raise
        headers = [("Transport", reply_spec.to_header()), ("Session", self._session_value(session))]
        return _ok(call, headers)

    async def _play(self, call: _Call) -> Reply:
        session = self._aggregate_session(call)
        result = await session.play(_play_request(call.request, session))
        headers = [("Session", self._session_value(session))]
        if result.range is not None:
            headers.append(("Range", result.range.to_header()))
        infos = []
        for index, sender in session.senders.items():
            rtptime = result.rtptimes.get(index)
            if rtptime is None and not sender.timeline_fixed:
                rtptime = sender.initial_rtptime
            url = call.target.base_url + sender.track.control
            infos.append(RtpInfo(url, sender.next_seq, rtptime))
        headers.append(("RTP-Info", format_rtp_info(infos)))
        headers.extend(result.headers)
        return _ok(call, headers, after=session.start_run)

    async def _pause(self, call: _Call) -> Reply:
        session = self._aggregate_session(call)
        await session.pause()
        return _ok(call, [("Session", self._session_value(session))])

    async def _teardown(self, call: _Call) -> Reply:
        session = self._require_session(call.session)
        await self._server.close_session(session, "TEARDOWN")
        return _ok(call, [("Session", session.id)])

    async def _parameter(self, call: _Call) -> Reply:
        # An empty GET_PARAMETER/SET_PARAMETER is the usual keepalive; no parameters are
        # defined by this core, so any named parameter is not understood.
        request, session = call.request, call.session
        if request.body.strip():
            raise RtspStatusError(451, f"{request.method} parameters are not supported")
        headers = [] if session is None else [("Session", self._session_value(session))]
        return _ok(call, headers)

    # ------------------------------------------------------------------ helpers
    def _aggregate_session(self, call: _Call) -> RtspSession:
        """The session PLAY or PAUSE controls, addressed by its aggregate (or only track) URL."""
        session = self._require_session(call.session)
        self._check_aggregate(session, call.target)
        return session

    def _session_value(self, session: RtspSession) -> str:
        return SessionHeader(session.id, session.timeout_s).to_header()

    @staticmethod
    def _require_resource(target: _Target) -> Resource:
        if target.resource is None:
            raise RtspStatusError(404, "this method needs a resource URL")
        return target.resource

    @staticmethod
    def _require_session(session: RtspSession | None) -> RtspSession:
        if session is None:
            raise RtspStatusError(454, "request needs a Session header")
        return session

    @staticmethod
    def _setup_track(description: ResourceDescription, target: _Target) -> int:
        tracks = description.tracks
        if not target.remainder:
            if len(tracks) == 1:
                return 0
            raise RtspStatusError(459, "SETUP of the aggregate URL: name a track")
        for index, track in enumerate(tracks):
            if track.control == target.remainder:
                return index
        raise RtspStatusError(404, f"no track {target.remainder!r}")

    @staticmethod
    def _check_aggregate(session: RtspSession, target: _Target) -> None:
        if not target.remainder:
            return
        controls = {s.track.control for s in session.senders.values()}
        if target.remainder not in controls:
            raise RtspStatusError(404, f"track {target.remainder!r} is not set up")
        if len(session.senders) > 1:
            raise RtspStatusError(460, "the session plays its tracks together")

    async def _open_track(
        self, connection: RtspConnection, session: RtspSession, index: int, spec: TransportSpec
    ) -> TransportSpec:
        old = session.senders.pop(index, None)
        if old is not None:
            old.channel.close()
        channel: PacketChannel
        server_ports: tuple[int, int] | None = None
        if spec.lower is LowerTransport.TCP:
            if session.interleaved_connection not in (None, connection):
                raise RtspStatusError(455, "interleaved tracks of a session need one connection")
            pair = connection.allocate_channels(session, index, spec.interleaved)
            if pair is None:
                raise RtspStatusError(453, "no free interleaved channels on this connection")
            session.interleaved_connection = connection
            channel = InterleavedChannel(connection, pair)
        else:
            assert spec.client_port is not None

            def on_rtcp(data: bytes, addr: tuple[str, int]) -> None:
                if addr[0] == connection.peer_host:
                    self._server.rtcp_received(session, data)

            try:
                udp = await open_udp_channel(
                    connection.local_host, connection.peer_host, spec.client_port, on_rtcp
                )
            except OSError as exc:
                raise RtspStatusError(453, f"no UDP ports: {exc}") from None
            channel, server_ports = udp, udp.server_ports
        track = session.description.tracks[index]
        try:
            packetizer = self._server.packetizer_factory(track.params)
        except (ProtocolError, ValueError) as exc:
            channel.close()
            raise RtspStatusError(415, f"track {track.control!r} cannot be sent: {exc}") from None
        sender = TrackSender(index, track, channel, packetizer, self._server.rng)
        session.senders[index] = sender
        if isinstance(channel, InterleavedChannel):
            return TransportSpec(
                lower=LowerTransport.TCP,
                interleaved=channel.channels,
                ssrc=sender.ssrc,
                mode=("PLAY",),
            )
        return TransportSpec(
            client_port=spec.client_port,
            server_port=server_ports,
            ssrc=sender.ssrc,
            mode=("PLAY",),
        )


_PUBLIC = ", ".join(PUBLIC_METHODS)
_STAR = ", ".join(_STAR_METHODS)


def new_session_id() -> str:
    """16 hex digits of randomness: unguessable, and well above RFC 2326's 8-octet minimum."""
    return secrets.token_hex(8)


def _choose_transport(request: RtspRequest) -> TransportSpec:
    value = request.headers.get_joined("Transport")
    if value is None:
        raise RtspStatusError(461, "SETUP without a Transport header")
    for spec in parse_transport(value):
        if not spec.is_rtp_avp or spec.unicast is False:
            continue
        if spec.mode and "PLAY" not in spec.mode:
            continue
        if spec.lower is LowerTransport.TCP:
            return spec
        if spec.client_port is not None and min(spec.client_port) > 0:
            return spec
    raise RtspStatusError(
        461, f"no supported transport (unicast RTP/AVP UDP or TCP) in {value[:120]!r}"
    )


def _play_request(request: RtspRequest, session: RtspSession) -> PlayRequest:
    headers = request.headers
    value = headers.get
    require = headers.get_joined("Require")
    return PlayRequest(
        request=request,
        cseq=parse_cseq(value("CSeq")),
        range=_opt(value("Range"), parse_range),
        scale=_opt(value("Scale"), parse_scale),
        speed=_opt(value("Speed"), parse_speed),
        rate_control=_opt(value("Rate-Control"), parse_rate_control),
        frames=_opt(value("Frames"), parse_frames),
        immediate=_opt(value("Immediate"), parse_immediate),
        require=parse_feature_tags(require) if require else (),
        tracks=tuple(session.senders),
    )


def _ok(
    call: _Call,
    headers: list[tuple[str, str]],
    *,
    body: bytes = b"",
    after: Callable[[], None] | None = None,
) -> Reply:
    return Reply(make_response(call.request, 200, headers=headers, body=body), after=after)


def _context(call: _Call) -> RequestContext:
    """What a resource is told about the request it serves."""
    connection, target = call.connection, call.target
    return RequestContext(
        request=call.request,
        base_url=target.base_url,
        mount=target.mount or "",
        username=call.username,
        peer_host=connection.peer_host,
        server_host=connection.local_host,
    )


def _opt(text: str | None, parse: Callable[[str], _T]) -> _T | None:
    return None if text is None else parse(text)
