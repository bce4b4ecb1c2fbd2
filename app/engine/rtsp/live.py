"""Serving a live source (camera, simulated camera, ingest hub) through the RTSP server core."""

from __future__ import annotations

import secrets

from app.core.ports import LiveSource
from app.engine.rtsp.resource import (
    MediaOutput,
    PlayRequest,
    PlayResult,
    RequestContext,
    ResourceDescription,
    RtspStatusError,
    TrackDescription,
    payload_type_for,
)
from app.protocols.rtp.formats import sdp_media_for
from app.protocols.rtsp.headers import format_scale
from app.protocols.rtsp.range import npt_range
from app.protocols.sdp import Origin, SessionDescription

#: Subscription queue asked of the source; the session's own bounded queue does the dropping.
LIVE_SUBSCRIPTION_QUEUE = 256


class LiveResource:
    """Mounts a LiveSource: SDP from its current tracks, each session subscribes on PLAY."""

    features: frozenset[str] = frozenset()

    def __init__(self, source: LiveSource, *, name: str = "Custos live") -> None:
        self._source = source
        self._name = name
        # The o= session id stays fixed for the mount; the version changes with the tracks.
        self._sdp_id = str(secrets.randbits(31))

    async def describe(self, context: RequestContext) -> ResourceDescription:
        params = list(self._source.tracks())
        if not params:
            raise RtspStatusError(503, "the live source is not running")
        tracks = tuple(
            TrackDescription(
                control=f"trackID={i}",
                params=p,
                payload_type=payload_type_for(p, i),
            )
            for i, p in enumerate(params)
        )
        media = tuple(sdp_media_for(t.params, t.payload_type, t.control) for t in tracks)
        host = context.server_host or "0.0.0.0"
        sdp = SessionDescription(
            origin=Origin(
                session_id=self._sdp_id,
                session_version=str(abs(hash(tuple(params))) % 1_000_000_007),
                address_type="IP6" if ":" in host else "IP4",
                address=host,
            ),
            session_name=self._name,
            connection="IN IP4 0.0.0.0",
            attributes=(("control", "*"), ("range", "npt=now-")),
            media=media,
        )
        return ResourceDescription(sdp=sdp, tracks=tracks)

    def create_producer(
        self, context: RequestContext, description: ResourceDescription
    ) -> LiveProducer:
        return LiveProducer(self._source)


class LiveProducer:
    """Forwards the source's frames to one session, dropping to a keyframe when it lags."""

    def __init__(self, source: LiveSource) -> None:
        self._source = source

    async def play(self, request: PlayRequest, output: MediaOutput) -> PlayResult:
        headers: list[tuple[str, str]] = []
        # A live stream has one speed and no position: the applied values are reported
        # instead of refusing (RFC 2326 §12.34 lets the server choose the scale).
        if request.scale is not None:
            headers.append(("Scale", format_scale(1.0)))
        if request.speed is not None:
            headers.append(("Speed", format_scale(1.0)))
        return PlayResult(range=npt_range(0), headers=tuple(headers))

    async def run(self, output: MediaOutput) -> None:
        frames = self._source.subscribe(LIVE_SUBSCRIPTION_QUEUE)
        try:
            async for track, unit in frames:
                output.offer(track, unit)
        finally:
            # Unsubscribe at once on PAUSE/TEARDOWN (async generators and LiveHub's
            # Subscription both offer aclose) instead of waiting for garbage collection.
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()

    async def pause(self) -> None:
        return None

    async def close(self) -> None:
        return None
