"""RTSP aliases of REST IDs: …/PSIA/Streaming/tracks/<id>?starttime=… replays, …/channels/<id> live.

Playback (§3.4): the query names the start, but RTSP clients drop it after DESCRIBE (SETUP and
PLAY address Content-Base + control). So the DESCRIBE answer moves the window into the track
controls as a path segment, `s=<start>[-e=<end>]/trackID=0`: the SETUP URL carries it back, the
session's producer reads it there, and a PLAY without Range starts at starttime (up to endtime).
The aggregate URL stays /…/tracks/<id>/, so PLAY/PAUSE/TEARDOWN address the same session.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from app.core.time import Clock, parse_iso
from app.engine.replay import ONVIF_REPLAY, ReplayResource
from app.engine.replay.plan import NPT_ABSOLUTE_FROM_NS
from app.engine.rest.context import parse_stream_id, recording_of
from app.engine.rest.status import RestError
from app.engine.rtsp import (
    MediaOutput,
    PlayRequest,
    PlayResult,
    RequestContext,
    Resource,
    ResourceDescription,
    ResourceResolver,
    RtspServer,
    RtspStatusError,
    StreamProducer,
)
from app.engine.storage import Recording, Store
from app.protocols.rtsp.message import RtspParseError
from app.protocols.rtsp.range import RangeUnit, clock_range, format_clock, parse_clock

#: RTSP mount prefixes of recorded tracks and live channels (HR-01 case variants, /ISAPI alias).
TRACK_PREFIXES = (
    "PSIA/Streaming/tracks",
    "PSIA/streaming/tracks",
    "ISAPI/Streaming/tracks",
    "Streaming/tracks",
)
CHANNEL_PREFIXES = tuple(p.replace("tracks", "channels") for p in TRACK_PREFIXES)
#: Longest query string looked at.
MAX_QUERY_CHARS = 1024

_WINDOW_SEGMENT = re.compile(r"s=(\d{8}T\d{6}(?:\.\d{1,9})?Z)(?:-e=(\d{8}T\d{6}(?:\.\d{1,9})?Z))?")


@dataclasses.dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int | None

    def segment(self) -> str:
        end = f"-e={format_clock(self.end_ns)}" if self.end_ns is not None else ""
        return f"s={format_clock(self.start_ns)}{end}"


def _parse_time(text: str) -> int:
    if "-" in text or ":" in text:
        return parse_iso(text)  # extended form, seen in fixtures (§3.4)
    try:
        return parse_clock(text)
    except RtspParseError as exc:
        raise ValueError(exc.message) from None


def window_of(uri: str) -> Window | None:
    """The playback window of a request URI: a window segment in the path, else the query."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise RtspStatusError(400, "malformed Request-URI") from None
    for segment in parts.path.split("/"):
        found = _WINDOW_SEGMENT.fullmatch(segment)
        if found is not None:
            end = found.group(2)
            return Window(parse_clock(found.group(1)), parse_clock(end) if end else None)
    if not parts.query or len(parts.query) > MAX_QUERY_CHARS:
        return None
    query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items()}
    start = query.get("starttime")
    if start is None:
        return None
    try:
        start_ns = _parse_time(start)
        end_ns = _parse_time(query["endtime"]) if query.get("endtime") else None
    except ValueError as exc:
        raise RtspStatusError(400, f"bad starttime/endtime: {exc}") from None
    if end_ns is not None and end_ns < start_ns:
        raise RtspStatusError(400, "endtime lies before starttime")
    return Window(start_ns, end_ns)


async def _recording(store: Store, ident: str) -> Recording:
    try:
        return (await recording_of(store, ident))[1]
    except RestError as exc:
        raise RtspStatusError(404, exc.message) from None


class StartAtProducer:
    """A replay producer whose first PLAY without Range plays the URI's window."""

    def __init__(self, inner: StreamProducer, window: Window) -> None:
        self._inner = inner
        self._window = window
        self._played = False

    async def play(self, request: PlayRequest, output: MediaOutput) -> PlayResult:
        asked = request.range
        window = self._window
        if asked is None and not self._played:
            request = dataclasses.replace(
                request, range=clock_range(window.start_ns, window.end_ns)
            )
        elif (
            asked is not None
            and asked.unit is RangeUnit.NPT
            and isinstance(asked.start, int)
            and asked.start < NPT_ABSOLUTE_FROM_NS
        ):
            # npt of this URI counts from starttime (FFmpeg always sends npt=0.000- first).
            end = window.start_ns + asked.end if isinstance(asked.end, int) else window.end_ns
            moved = clock_range(window.start_ns + asked.start, end)
            request = dataclasses.replace(request, range=moved)
        self._played = True
        return await self._inner.play(request, output)

    async def run(self, output: MediaOutput) -> None:
        await self._inner.run(output)

    async def pause(self) -> None:
        await self._inner.pause()

    async def close(self) -> None:
        await self._inner.close()


class TrackPlayback:
    """One request's view of rtsp://…/PSIA/Streaming/tracks/<id>: a replay of recording n."""

    features: frozenset[str] = frozenset({ONVIF_REPLAY})

    def __init__(
        self, store: Store, clock: Clock, ident: str, timeout: Callable[[], float] | None
    ) -> None:
        self._store = store
        self._clock = clock
        self._ident = ident
        self._timeout = timeout
        self._replay: ReplayResource | None = None

    async def describe(self, context: RequestContext) -> ResourceDescription:
        rec = await _recording(self._store, self._ident)
        self._replay = ReplayResource(
            self._store, rec.token, self._clock, session_timeout_s=self._timeout
        )
        description = await self._replay.describe(context)
        window = window_of(context.request.uri)
        if window is None:
            return description
        prefix = window.segment() + "/"
        tracks = tuple(
            dataclasses.replace(t, control=prefix + t.control) for t in description.tracks
        )
        media = tuple(
            dataclasses.replace(
                m,
                attributes=tuple(
                    (k, prefix + v if k.lower() == "control" and v else v) for k, v in m.attributes
                ),
            )
            for m in description.sdp.media
        )
        sdp = dataclasses.replace(description.sdp, media=media)
        return ResourceDescription(sdp=sdp, tracks=tracks)

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> StreamProducer:
        if self._replay is None:  # the server describes before it creates a session
            raise RtspStatusError(500, "playback resource used before DESCRIBE")
        inner = self._replay.create_producer(context, description)
        window = window_of(context.request.uri)
        return inner if window is None else StartAtProducer(inner, window)


class ChannelLive:
    """One request's view of rtsp://…/PSIA/Streaming/channels/<id>: the live mount of n."""

    features: frozenset[str] = frozenset()

    def __init__(
        self, server: RtspServer, store: Store, ident: str, live_path: Callable[[str], str]
    ) -> None:
        self._server = server
        self._store = store
        self._ident = ident
        self._live_path = live_path
        self._live: Resource | None = None

    async def describe(self, context: RequestContext) -> ResourceDescription:
        rec = await _recording(self._store, self._ident)
        path = self._live_path(rec.token).strip("/")
        found = self._server.find_mount(path)
        if found is None or found[0] != path or isinstance(found[1], ResourceResolver):
            raise RtspStatusError(404, f"recording {rec.token!r} has no live stream")
        self._live = found[1]
        return await self._live.describe(context)

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> StreamProducer:
        if self._live is None:
            raise RtspStatusError(500, "live resource used before DESCRIBE")
        return self._live.create_producer(context, description)


class TrackResolver:
    """ResourceResolver of the track prefixes: the first segment is the track ID."""

    def __init__(self, store: Store, clock: Clock, timeout: Callable[[], float] | None) -> None:
        self._store, self._clock, self._timeout = store, clock, timeout

    def resolve(self, path: str) -> tuple[str, Resource] | None:
        ident = path.split("/", 1)[0]
        if parse_stream_id(ident) is None:
            return None
        return ident, TrackPlayback(self._store, self._clock, ident, self._timeout)


class ChannelResolver:
    """ResourceResolver of the channel prefixes: the first segment is the channel ID."""

    def __init__(self, server: RtspServer, store: Store, live_path: Callable[[str], str]) -> None:
        self._server, self._store, self._live_path = server, store, live_path

    def resolve(self, path: str) -> tuple[str, Resource] | None:
        ident = path.split("/", 1)[0]
        if parse_stream_id(ident) is None:
            return None
        return ident, ChannelLive(self._server, self._store, ident, self._live_path)


def attach_rtsp(
    server: RtspServer,
    store: Store,
    clock: Clock,
    *,
    live_path: Callable[[str], str],
    session_timeout_s: Callable[[], float] | None = None,
) -> None:
    """Mount the track and channel aliases on `server` (one resolver per prefix)."""
    tracks = TrackResolver(store, clock, session_timeout_s)
    live = ChannelResolver(server, store, live_path)
    for prefix in TRACK_PREFIXES:
        server.mount(prefix, tracks)
    for prefix in CHANNEL_PREFIXES:
        server.mount(prefix, live)
