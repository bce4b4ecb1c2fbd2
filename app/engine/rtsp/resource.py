"""What the RTSP server serves: mounted resources, their tracks, and per-session stream producers.

A `Resource` is mounted at a path. DESCRIBE asks it for a `ResourceDescription` (the SDP and the
tracks behind each a=control); the first SETUP of a session asks it for a `StreamProducer`, which
the session owns until TEARDOWN or timeout. Each PLAY calls `producer.play` with the parsed
request (Range, Scale, Speed, Rate-Control, Frames, Immediate, Require) before the response is
sent, then runs `producer.run(output)` as the session's task; PAUSE, a new PLAY and TEARDOWN
cancel that task. `run` returning means the end of the stream (RTCP BYE follows).

Optional hooks of a resource: `session_timeout_s` (a callable giving the timeout, in seconds, of
new sessions; the server default otherwise), and a `ResourceResolver` mounted instead of a
resource answers for every path below its mount (e.g. one `replay` mount for replay/<token>).

Hooks for ONVIF replay: `Resource.features` lists the Require tags it implements (others get
551); `play` may raise RtspStatusError (457 Invalid Range, 551 …) and returns the headers to
echo; `MediaOutput.send` takes a per-packet header-extension hook (0xABAC) and an explicit RTP
time; `MediaOutput.set_report_mode` selects what RTCP sender reports carry.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from app.core.errors import CustosError, ErrorKind
from app.core.media import AccessUnit, Codec, CodecParams
from app.protocols.rtsp.headers import FramesHeader
from app.protocols.rtsp.message import RtspRequest
from app.protocols.rtsp.range import TimeRange
from app.protocols.sdp import SessionDescription

#: First dynamic RTP payload type (RFC 3551 §6).
FIRST_DYNAMIC_PAYLOAD_TYPE = 96
#: Codecs with a static payload type (RFC 3551 table 4); all others get dynamic ones.
STATIC_PAYLOAD_TYPES = {Codec.PCMU: 0, Codec.PCMA: 8, Codec.JPEG: 26}

#: RTP header extension of one packet: (16-bit profile id, data of whole 32-bit words).
RtpExtension = tuple[int, bytes]
#: Called per packet of a unit with (packet index, packet count); None means no extension.
ExtensionHook = Callable[[int, int], RtpExtension | None]


def payload_type_for(params: CodecParams, index: int) -> int:
    """The RTP payload type of SDP media section `index`: static if the codec has one, else
    a dynamic type unique within the description."""
    return STATIC_PAYLOAD_TYPES.get(params.codec, FIRST_DYNAMIC_PAYLOAD_TYPE + index)


class RtspStatusError(CustosError):
    """Answer the request with this RTSP status (and headers); raised by resources and handlers."""

    def __init__(
        self, status: int, message: str, *, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message, kind=ErrorKind.INVALID_ARGUMENT)
        self.status = status
        self.headers = tuple(headers)


@dataclasses.dataclass(frozen=True, slots=True)
class TrackDescription:
    """One SDP media section: its a=control (relative to Content-Base) and what it carries."""

    control: str
    params: CodecParams
    payload_type: int


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceDescription:
    """The DESCRIBE answer of a resource: the SDP and, in the same order, its tracks."""

    sdp: SessionDescription
    tracks: tuple[TrackDescription, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asked what: the request, its mount-relative address and the authenticated user."""

    request: RtspRequest
    #: The mount's base URL as the client spelt it, ending in "/" (the Content-Base).
    base_url: str
    #: The mount path the resource is registered under (no leading/trailing "/").
    mount: str
    username: str | None
    peer_host: str
    #: The server address the client connected to (for SDP o= lines).
    server_host: str


@dataclasses.dataclass(frozen=True, slots=True)
class PlayRequest:
    """A PLAY with its ONVIF/RFC 2326 headers parsed (None = header absent)."""

    request: RtspRequest
    cseq: int
    range: TimeRange | None
    scale: float | None
    speed: float | None
    rate_control: bool | None
    frames: FramesHeader | None
    immediate: bool | None
    require: tuple[str, ...]
    #: Resource track indexes the session has set up.
    tracks: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PlayResult:
    """What the PLAY response reports beyond Session and RTP-Info."""

    range: TimeRange | None = None
    #: Extra headers (Scale, Speed, Rate-Control, Frames …) to echo the applied values.
    headers: tuple[tuple[str, str], ...] = ()
    #: RTP-Info rtptime per track index (from `MediaOutput.rtp_timestamp`); tracks not listed
    #: report the random initial RTP time while their timeline is not fixed yet.
    rtptimes: Mapping[int, int] = dataclasses.field(default_factory=dict)


class ReportMode(enum.Enum):
    """What the NTP/RTP pair of an RTCP sender report says."""

    #: The wall clock and RTP time of the last unit sent: receivers recover each frame's
    #: capture time exactly (live, and replay with rate control).
    MEDIA_CLOCK = "media"
    #: The current wall clock and the RTP time extrapolated to it (RFC 3550 as written).
    CURRENT_TIME = "current"
    #: Both zero: ONVIF replay without rate control (Streaming spec §6.11).
    ZERO = "zero"


class MediaOutput(Protocol):
    """Where a producer puts the units of one session (implemented by the server)."""

    @property
    def tracks(self) -> tuple[int, ...]:
        """Resource track indexes set up in this session; units of other tracks are ignored."""
        ...

    async def send(
        self,
        track: int,
        unit: AccessUnit,
        *,
        rtp_time: int | None = None,
        extension: ExtensionHook | None = None,
    ) -> None:
        """Queue a unit, waiting while the session's queue is full (never drops).

        `rtp_time` replaces `unit.media_ts` as the media time (e.g. rendering time for
        rate-controlled reverse replay); the session's random offset is added to either.
        """
        ...

    def offer(self, track: int, unit: AccessUnit) -> bool:
        """Queue a live unit without waiting: when the queue is full it is cleared and units
        are dropped (and counted) until the next keyframe. Returns False if `unit` was dropped."""
        ...

    async def drain(self) -> None:
        """Wait until every queued unit has been handed to the transport."""
        ...

    def rtp_timestamp(self, track: int, media_time: int) -> int:
        """The 32-bit RTP timestamp `media_time` will be sent with (fixes the offset if unset)."""
        ...

    def set_report_mode(self, mode: ReportMode) -> None: ...


class StreamProducer(Protocol):
    """Produces the media of one session; owned by the session, driven by PLAY/PAUSE."""

    async def play(self, request: PlayRequest, output: MediaOutput) -> PlayResult:
        """Validate and position for a PLAY (raise RtspStatusError to refuse it).

        Runs before the response is sent and before `run`; `output` is where `run` will send,
        e.g. to fix RTP times (`rtp_timestamp`) or the RTCP report mode.
        """
        ...

    async def run(self, output: MediaOutput) -> None:
        """Send units until the stream ends; cancelled by PAUSE, a new PLAY or TEARDOWN."""
        ...

    async def pause(self) -> None:
        """The session paused (the run task has already been cancelled)."""
        ...

    async def close(self) -> None:
        """The session ended; release everything."""
        ...


class Resource(Protocol):
    """A mount point's content."""

    #: Feature tags this resource implements (Require/Proxy-Require); others are refused (551).
    features: frozenset[str]

    async def describe(self, context: RequestContext) -> ResourceDescription:
        """The SDP and tracks; raise NotFoundError (404), RtspStatusError … to refuse."""
        ...

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> StreamProducer:
        """A producer for a new session that set up tracks of `description`."""
        ...


@runtime_checkable
class ResourceResolver(Protocol):
    """Mounted in place of a resource: picks the resource for each path below the mount."""

    def resolve(self, path: str) -> tuple[str, Resource] | None:
        """(the leading part of `path` that names the resource, the resource), or None (404).

        `path` is what follows the mount, without leading "/" (e.g. "Gate/trackID=0"); the
        named part becomes the resource's own mount (Content-Base, session scope) and the rest
        the track address.
        """
        ...
