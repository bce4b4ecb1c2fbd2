"""Test doubles for the RTSP server tests: a raw RTSP client, a scripted live source, a clip."""

from __future__ import annotations

import asyncio
import collections
import fractions
import functools
import random
from collections.abc import AsyncIterator, Sequence

from app.core.media import AccessUnit, Codec, CodecParams, TimeSource
from app.core.time import NS_PER_SECOND
from app.formats.h26x import h264_nal_type, join_length_prefixed, split_annexb
from app.protocols.rtsp.message import (
    Headers,
    InterleavedFrame,
    RtspRequest,
    RtspResponse,
    encode_interleaved,
    encode_request,
)
from app.protocols.rtsp.parser import RtspParser

#: Wall clock of the first clip frame: 2026-11-21T14:00:00Z.
CLIP_START_NS = 1_795_269_600 * NS_PER_SECOND
CLIP_FPS = 25
PCMU = CodecParams(Codec.PCMU, 8000, sample_rate=8000, channels=1)
#: Synthetic H.264 units for flow-control tests: size and keyframe interval.
BIG_UNIT_BYTES = 60_000
BIG_GOP = 10


class RawClient:
    """A minimal RTSP client on a raw TCP connection: exact bytes in, parsed events out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = RtspParser()
        self.cseq = 0
        self.frames: collections.deque[InterleavedFrame] = collections.deque()
        self.responses: collections.deque[RtspResponse] = collections.deque()

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass

    def pause_reading(self) -> None:
        """Stop reading the socket: the server's sends back up (a stalled client)."""
        transport = self.writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.resume_reading()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(
        self,
        method: str,
        uri: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> int:
        self.cseq += 1
        request = RtspRequest(method, uri, Headers([("CSeq", str(self.cseq)), *headers]), body)
        await self.send_raw(encode_request(request))
        return self.cseq

    async def request(
        self,
        method: str,
        uri: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> RtspResponse:
        cseq = await self.send(method, uri, headers, body)
        response = await self.response()
        assert response.cseq == cseq, (response, cseq)
        return response

    async def send_rtcp(self, channel: int, packet: bytes) -> None:
        await self.send_raw(encode_interleaved(channel, packet))

    async def response(self) -> RtspResponse:
        """The next response; interleaved frames read on the way are kept in `frames`."""
        while not self.responses:
            await self._pump()
        return self.responses.popleft()

    async def frame(self, channel: int | None = None) -> InterleavedFrame:
        """The next frame (of `channel`, when given: frames of other channels stay queued)."""
        while True:
            for i, frame in enumerate(self.frames):
                if channel is None or frame.channel == channel:
                    del self.frames[i]
                    return frame
            await self._pump()

    async def at_eof(self) -> bool:
        """Read until the server closes; True when it did (events read are kept)."""
        while True:
            data = await self.reader.read(65536)
            if not data:
                return True
            self._feed(data)

    async def _pump(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        self.parser.feed(data)
        while (event := self.parser.next_event()) is not None:
            if isinstance(event, InterleavedFrame):
                self.frames.append(event)
            elif isinstance(event, RtspResponse):
                self.responses.append(event)


class ScriptedLiveSource:
    """A LiveSource whose frames the test pushes; subscriptions are unbounded queues."""

    def __init__(self, tracks: Sequence[CodecParams]) -> None:
        self._tracks = list(tracks)
        self._queues: list[asyncio.Queue[tuple[int, AccessUnit] | None]] = []
        self.subscribed = asyncio.Event()
        self.subscriptions = 0

    def tracks(self) -> Sequence[CodecParams]:
        return self._tracks

    async def subscribe(self, max_queue: int = 256) -> AsyncIterator[tuple[int, AccessUnit]]:
        queue: asyncio.Queue[tuple[int, AccessUnit] | None] = asyncio.Queue()
        self._queues.append(queue)
        self.subscriptions += 1
        self.subscribed.set()
        try:
            while (item := await queue.get()) is not None:
                yield item
                # The consumer asks for the next item only once it has handled this one.
                queue.task_done()
        finally:
            self._queues.remove(queue)
            if not self._queues:
                self.subscribed.clear()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    async def consumed(self) -> None:
        """Wait until every subscriber has handled every item pushed so far."""
        await asyncio.gather(*(queue.join() for queue in self._queues))

    def push(self, track: int, unit: AccessUnit) -> None:
        for queue in self._queues:
            queue.put_nowait((track, unit))

    def stop(self) -> None:
        for queue in self._queues:
            queue.put_nowait(None)


@functools.cache
def h264_clip(frames: int = 50, width: int = 160, height: int = 96, gop: int = 25) -> Clip:
    """A libx264 clip (no B-frames) in the app.core.media layout: SPS/PPS before keyframes."""
    import av  # PyAV only where a test needs real H.264

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, CLIP_FPS)
    codec.options = {"bf": "0", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
    codec.options["preset"] = "ultrafast"
    codec.options["tune"] = "zerolatency"
    packets = []
    for i in range(frames):
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane_index, plane in enumerate(frame.planes):
            value = (i * 7 + plane_index * 50) % 256
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = i
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    sps = pps = b""
    units = []
    for packet in packets:
        nals = split_annexb(bytes(packet))
        for nal in nals:
            if h264_nal_type(nal) == 7:
                sps = nal
            elif h264_nal_type(nal) == 8:
                pps = nal
        keyframe = any(h264_nal_type(n) == 5 for n in nals)
        body = [n for n in nals if h264_nal_type(n) not in (7, 8)]
        if keyframe:
            body = [sps, pps, *body]
        units.append((join_length_prefixed(body), keyframe))
    params = CodecParams(Codec.H264, 90_000, width=width, height=height, parameter_sets=(sps, pps))
    return Clip(params, tuple(units))


class Clip:
    """Encoded frames of a clip and a way to stamp them as live units at any position."""

    def __init__(self, params: CodecParams, units: tuple[tuple[bytes, bool], ...]) -> None:
        self.params = params
        self.units = units

    def unit(self, n: int) -> AccessUnit:
        """Frame n of an endless loop of the clip: media and wall time keep running."""
        data, keyframe = self.units[n % len(self.units)]
        return AccessUnit(
            data=data,
            media_ts=n * 90_000 // CLIP_FPS,
            wall_ns=CLIP_START_NS + n * NS_PER_SECOND // CLIP_FPS,
            keyframe=keyframe,
            time_source=TimeSource.LOCAL_CAPTURE,
        )


def pcmu_unit(n: int) -> AccessUnit:
    """20 ms of µ-law silence, the n-th of an audio track aligned with the clip."""
    return AccessUnit(
        data=b"\xff" * 160,
        media_ts=n * 160,
        wall_ns=CLIP_START_NS + n * 20_000_000,
        keyframe=True,
        time_source=TimeSource.LOCAL_CAPTURE,
    )


def big_unit(n: int, sps: bytes, pps: bytes, rng: random.Random) -> AccessUnit:
    """A synthetic H.264 access unit of about BIG_UNIT_BYTES, an IDR every BIG_GOP frames."""
    keyframe = n % BIG_GOP == 0
    body = bytearray(rng.randbytes(BIG_UNIT_BYTES))
    body[0] |= 0x80  # first_mb_in_slice = 0: each unit starts a picture
    slice_nal = bytes([0x65 if keyframe else 0x41]) + bytes(body)
    nals = [sps, pps, slice_nal] if keyframe else [slice_nal]
    return AccessUnit(
        data=join_length_prefixed(nals),
        media_ts=n * 3600,
        wall_ns=CLIP_START_NS + n * 40_000_000,
        keyframe=keyframe,
        time_source=TimeSource.LOCAL_CAPTURE,
    )
