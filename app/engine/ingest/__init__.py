"""RTSP ingest: pull cameras over RTSP (TCP interleaved or UDP) into a MediaSink, supervised.

Public API: `Receiver` (one supervised loop per camera), its observable `ReceiverState` /
`ReceiverStatus`, and `redact_url` for any place that shows a camera URI.
"""

from __future__ import annotations

from app.engine.ingest.receiver import (
    Receiver,
    ReceiverState,
    ReceiverStats,
    ReceiverStatus,
    StateListener,
    backoff_delay,
)
from app.engine.ingest.session import RtspStatusError, SourceAuthError
from app.engine.ingest.url import parse_source_url, redact_url

__all__ = [
    "Receiver",
    "ReceiverState",
    "ReceiverStats",
    "ReceiverStatus",
    "RtspStatusError",
    "SourceAuthError",
    "StateListener",
    "backoff_delay",
    "parse_source_url",
    "redact_url",
]
