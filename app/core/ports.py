"""Protocols the layers meet on: media sources push into sinks, the RTSP server pulls live tracks.

Data flow of the recorder (all on the engine's asyncio loop):

    camera ──RTSP──> ingest.Receiver ─┐
                                      ├─> MediaSink (engine.live.LiveHub) ─┬─> recorder → storage
    simcam.SimulatedCamera ───────────┘                                    └─> RTSP server (live)

A source calls `start` once per connected run (after every reconnect), then `frame` for every
access unit, then `stop` when the run ends (the store records a gap there). Callbacks run on the
loop thread and must not block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from app.core.media import AccessUnit, CodecParams


class MediaSink(Protocol):
    """Receives the tracks and frames of one source, run by run."""

    def start(self, tracks: Sequence[CodecParams]) -> None:
        """A run begins: `tracks[i]` describes track index i of the following frames."""
        ...

    def frame(self, track: int, unit: AccessUnit, params: CodecParams) -> None:
        """One access unit of track `track`; `params` changes only when the codec setup does."""
        ...

    def stop(self, reason: str | None) -> None:
        """The run ended (`reason` is None for an orderly end, else a human-readable cause)."""
        ...


class LiveSource(Protocol):
    """A live stream the RTSP server can serve: current track set plus a bounded subscription."""

    def tracks(self) -> Sequence[CodecParams]:
        """The tracks of the current run; empty while the source is not running."""
        ...

    def subscribe(self, max_queue: int = 256) -> AsyncIterator[tuple[int, AccessUnit]]:
        """Frames from now on as (track index, unit), starting at the next video keyframe.

        Live viewers may lose frames: when a subscriber's queue is full it is cleared and the
        subscriber resumes at the next keyframe; the loss is counted by the source.
        """
        ...
