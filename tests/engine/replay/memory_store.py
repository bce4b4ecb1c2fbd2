"""An in-memory stand-in for the Store reads the replay producer makes, for fast property tests.

It answers exactly the queries app.engine.replay uses (track_media, keyframe_at_or_before,
frames, read_frames, read_frame, recording) with the Store's documented semantics: frames in
(wall_ns, id) order, ranges [start, end), keyframe lookup "newest keyframe at or before".
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import cast

from app.core.media import Codec, TimeSource, TrackKind
from app.engine.replay.resource import ReplayResource
from app.engine.storage import FrameRef, RecordingStatus, Slice, Store, StoredFrame, TrackMedia

TOKEN = "Prop"
TRACK = "VIDEO001"


@dataclasses.dataclass(frozen=True)
class Picture:
    """One stored video picture: wall clock, run, and whether it is a key or a B-frame."""

    wall_ns: int
    run_id: int
    keyframe: bool
    disposable: bool = False

    def data(self) -> bytes:
        # One length-prefixed H.264 slice NAL: IDR, a reference P slice or a non-reference slice
        # (nal_ref_idc 0: what Frames: predicted drops).
        header = 0x65 if self.keyframe else (0x01 if self.disposable else 0x41)
        return b"\x00\x00\x00\x02" + bytes([header, 0x88])


@dataclasses.dataclass
class _Recording:
    status: RecordingStatus


class MemoryStore:
    """One recording with one H.264 video track holding `pictures` (sorted by wall clock)."""

    def __init__(self, pictures: Sequence[Picture]) -> None:
        self.frames_ = [
            StoredFrame(
                FrameRef(
                    id=i + 1,
                    run_id=p.run_id,
                    segment_id=p.run_id,
                    offset=i,
                    size=6,
                    media_ts=p.wall_ns // 11_111,
                    wall_ns=p.wall_ns,
                    keyframe=p.keyframe,
                    time_source=TimeSource.LOCAL_CAPTURE,
                ),
                p.data(),
            )
            for i, p in enumerate(pictures)
        ]
        self.status = RecordingStatus.STOPPED

    def as_store(self) -> Store:
        return cast(Store, self)

    def resource(self) -> ReplayResource:
        return ReplayResource(self.as_store(), TOKEN, live_poll_s=0.0)

    async def recording(self, token: str) -> _Recording:
        return _Recording(self.status)

    async def track_media(self, recording: str | None = None) -> list[TrackMedia]:
        refs = [f.ref for f in self.frames_]
        slices = tuple(
            Slice(run, group[0].wall_ns, group[-1].wall_ns, len(group))
            for run, group in (
                (run, list(g)) for run, g in itertools.groupby(refs, key=lambda r: r.run_id)
            )
        )
        return [
            TrackMedia(
                recording=TOKEN,
                track=TRACK,
                kind=TrackKind.VIDEO,
                codec=Codec.H264,
                earliest_ns=refs[0].wall_ns if refs else None,
                latest_ns=refs[-1].wall_ns if refs else None,
                frame_count=len(refs),
                bytes=6 * len(refs),
                slices=slices,
            )
        ]

    async def keyframe_at_or_before(
        self, recording: str, track: str, wall_ns: int
    ) -> FrameRef | None:
        found = [f.ref for f in self.frames_ if f.ref.keyframe and f.ref.wall_ns <= wall_ns]
        return found[-1] if found else None

    async def frames(
        self, recording: str, track: str, start_ns: int, end_ns: int, *, page: int = 256
    ) -> AsyncIterator[FrameRef]:
        for frame in self._between(start_ns, end_ns):
            yield frame.ref

    async def read_frames(
        self, recording: str, track: str, start_ns: int, end_ns: int, *, page: int = 256
    ) -> AsyncIterator[StoredFrame]:
        for frame in self._between(start_ns, end_ns):
            yield frame

    async def read_frame(self, ref: FrameRef) -> bytes:
        return next(f.data for f in self.frames_ if f.ref == ref)

    def _between(self, start_ns: int, end_ns: int) -> list[StoredFrame]:
        return [f for f in self.frames_ if start_ns <= f.ref.wall_ns < end_ns]
