"""The asyncio RTSP server core: mounts, sessions, TCP-interleaved and UDP delivery, RTCP, auth.

`RtspServer` serves `Resource`s (see resource.py for the contracts the ONVIF replay server
implements); `LiveResource` serves an app.core.ports.LiveSource.
"""

from __future__ import annotations

from app.engine.rtsp.live import LiveResource
from app.engine.rtsp.resource import (
    ExtensionHook,
    MediaOutput,
    PlayRequest,
    PlayResult,
    ReportMode,
    RequestContext,
    Resource,
    ResourceDescription,
    ResourceResolver,
    RtspStatusError,
    StreamProducer,
    TrackDescription,
    payload_type_for,
)
from app.engine.rtsp.server import RtspServer

__all__ = [
    "ExtensionHook",
    "LiveResource",
    "MediaOutput",
    "PlayRequest",
    "PlayResult",
    "ReportMode",
    "RequestContext",
    "Resource",
    "ResourceDescription",
    "ResourceResolver",
    "RtspServer",
    "RtspStatusError",
    "StreamProducer",
    "TrackDescription",
    "payload_type_for",
]
