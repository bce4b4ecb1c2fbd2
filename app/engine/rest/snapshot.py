"""JPEG snapshots of a recording's newest keyframe: decoded with PyAV off the loop, cached briefly.

A stored keyframe decodes on its own (media.py: H.264/H.265 keyframes carry their parameter
sets), so one keyframe is all a snapshot needs; JPEG tracks are returned as stored.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import fractions

import av
from av.codec.context import CodecContext
from av.video.codeccontext import VideoCodecContext

from app.core.media import Codec
from app.core.time import NS_PER_SECOND, Clock
from app.engine.rest.status import RestError, Status, StatusCode
from app.engine.storage import Store
from app.formats.h26x import length_prefixed_to_annexb

#: A snapshot younger than this is served again instead of decoding (clients poll thumbnails).
SNAPSHOT_CACHE_S = 1.0
#: Recordings whose last snapshot is kept.
MAX_CACHED_SNAPSHOTS = 64
#: JPEG quality scale of the mjpeg encoder (2 best … 31 worst).
JPEG_QSCALE = 4

_DECODERS = {Codec.H264: "h264", Codec.H265: "hevc"}


@dataclasses.dataclass(frozen=True)
class _Cached:
    frame_id: int
    taken_mono_ns: int
    jpeg: bytes


class SnapshotError(RestError):
    """No picture can be made (no video yet, undecodable keyframe)."""


def _unavailable(message: str) -> SnapshotError:
    return SnapshotError(Status(StatusCode.DEVICE_BUSY, "noVideo"), message)


class Snapshots:
    """The newest keyframe of a recording's video track as JPEG."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._cache: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._lock = asyncio.Lock()

    async def jpeg(self, recording: str, track: str) -> bytes:
        now = self._clock.monotonic_ns()
        cached = self._cache.get(recording)
        if cached is not None and now - cached.taken_mono_ns < SNAPSHOT_CACHE_S * NS_PER_SECOND:
            return cached.jpeg
        # One decode at a time: a burst of thumbnail requests must not fill both cores.
        async with self._lock:
            last = await self._store.last_frame(recording, track)
            if last is None:
                raise _unavailable(f"recording {recording!r} holds no video yet")
            key = await self._store.keyframe_at_or_before(recording, track, last.wall_ns)
            if key is None:
                raise _unavailable(f"recording {recording!r} holds no keyframe yet")
            cached = self._cache.get(recording)
            if cached is not None and cached.frame_id == key.id:
                jpeg = cached.jpeg
            else:
                params = await self._store.params_for_frame(key)
                data = await self._store.read_frame(key)
                jpeg = await asyncio.to_thread(to_jpeg, params.codec, data)
            self._cache[recording] = _Cached(key.id, now, jpeg)
            self._cache.move_to_end(recording)
            while len(self._cache) > MAX_CACHED_SNAPSHOTS:
                self._cache.popitem(last=False)
            return jpeg


def to_jpeg(codec: Codec, payload: bytes) -> bytes:
    """One stored keyframe (media.py layout) as a JPEG image; SnapshotError if impossible."""
    if codec is Codec.JPEG:
        return payload
    name = _DECODERS.get(codec)
    if name is None:
        raise _unavailable(f"no snapshot from {codec.value} video")
    decoder = CodecContext.create(name, "r")
    assert isinstance(decoder, VideoCodecContext)
    try:
        frames = list(decoder.decode(av.Packet(length_prefixed_to_annexb(payload))))
        frames += list(decoder.decode(None))
    except (av.FFmpegError, ValueError) as exc:
        raise _unavailable(f"the newest keyframe does not decode: {exc}") from None
    if not frames:
        raise _unavailable("the newest keyframe decoded to no picture")
    picture = frames[0]
    encoder = CodecContext.create("mjpeg", "w")
    encoder.width = picture.width
    encoder.height = picture.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = fractions.Fraction(1, 25)
    encoder.options = {"qscale": str(JPEG_QSCALE)}
    encoder.flags |= av.codec.context.Flags.qscale
    encoder.open()
    packets = list(encoder.encode(picture.reformat(format="yuvj420p")))
    packets += list(encoder.encode(None))
    return b"".join(bytes(p) for p in packets)
